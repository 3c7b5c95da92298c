/*
 * cgr CUDA interop: the CUDA handles behind a runtime, for code that mixes
 * its own CUDA work with cgr's (launching its step kernels on cgr's main
 * stream, recording its own events after a replay, ...).
 *
 * This is the only cgr header that includes a CUDA header; <cgr/cgr.h>
 * stays free of CUDA types. It exists only in builds with the CUDA backend.
 * cgr carries its own CUDA runtime, linked into libcgr privately; the
 * caller's code may use any CUDA runtime, shared or static, that the driver
 * supports. The handles below are the driver's (a cudaStream_t is a
 * CUstream), so they work with the caller's runtime too.
 *
 * Threading and errors are as described at the top of <cgr/cgr.h>, except
 * where a function below says otherwise.
 */
#ifndef CGR_CGR_CUDA_H
#define CGR_CGR_CUDA_H

#include <cuda_runtime_api.h>

#include <cgr/cgr.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * The cudaStream_t of one of the runtime's streams: CGR_STREAM_MAIN (which
 * launches graphs) or CGR_STREAM_SIDE (which loads the next step's inputs).
 *
 * Ownership: the stream belongs to the runtime. It stays valid until
 * cgr_runtime_destroy(rt); never destroy it, and do not use it after rt is
 * destroyed. Work the caller enqueues on it is ordered with cgr's own work
 * on that stream, exactly as CUDA orders any work on one stream. The
 * stream is created with cudaStreamNonBlocking, so it does not synchronize
 * with the legacy default stream.
 *
 * Returns CGR_OK and sets *out. On failure *out is NULL (when out is not
 * NULL) and, when rt is not NULL, cgr_last_error(rt) says why. Errors:
 *   CGR_E_INVALID_ARGUMENT  rt or out is NULL, or role is not a
 *                           cgr_stream_role
 *   CGR_E_UNSUPPORTED       the runtime runs on the host backend, which has
 *                           no CUDA streams
 *
 * Threads: any thread, also while another thread uses rt; it only reads
 * what cgr_runtime_create() set.
 */
CGR_API cgr_status cgr_cuda_stream(cgr_runtime *rt, cgr_stream_role role,
                                   cudaStream_t *out);

/*
 * The CUDA device ordinal the runtime runs on (the resolved config->device
 * or CGR_DEVICE). cgr makes it current on its own threads; the caller must
 * make it current on theirs (cudaSetDevice) before enqueuing work on the
 * runtime's streams from a thread that uses several devices.
 *
 * Returns CGR_OK and sets *out. On failure *out is -1 (when out is not
 * NULL) and, when rt is not NULL, cgr_last_error(rt) says why. Errors:
 *   CGR_E_INVALID_ARGUMENT  rt or out is NULL
 *   CGR_E_UNSUPPORTED       the runtime runs on the host backend
 *
 * Threads: any thread, also while another thread uses rt.
 */
CGR_API cgr_status cgr_cuda_device(const cgr_runtime *rt, int *out);

/*
 * The stream a step enqueues its work on, for a step written in CUDA: launch
 * kernels on it with cudaLaunchKernelEx and check the status it returns
 * (cudaGetLastError would also report an error left behind earlier), or
 * call cuBLAS on it. During capture the stream is capturing: only
 * stream-ordered work is allowed (no synchronization, no cudaMalloc).
 *
 * Errors: CGR_E_INVALID_ARGUMENT (NULL), CGR_E_UNSUPPORTED on the host
 * backend (a step there uses cgr_step_launch). *out is NULL on failure.
 * Call only from inside the step function.
 */
CGR_API cgr_status cgr_cuda_step_stream(const cgr_step *step,
                                        cudaStream_t *out);

/*
 * Records the event on the caller's stream: a batch that waits for it
 * (cgr_batch_wait_event) reads its inputs only after the work the caller
 * enqueued on `stream` before this call. The stream may belong to any CUDA
 * runtime in the process (PyTorch's, the caller's own), on the runtime's
 * device. Errors: CGR_E_INVALID_ARGUMENT (NULL event), CGR_E_UNSUPPORTED
 * (a host-backend runtime), CGR_E_CUDA. Same thread rules as the runtime.
 */
CGR_API cgr_status cgr_cuda_event_record(cgr_event *event, cudaStream_t stream);

/*
 * The event's cudaEvent_t, to wait for it on the caller's stream
 * (cudaStreamWaitEvent) after cgr_ticket_record_event. Owned by the event:
 * valid until cgr_event_destroy; never destroy it. Errors:
 * CGR_E_INVALID_ARGUMENT, CGR_E_UNSUPPORTED (a host-backend runtime).
 * Any thread.
 */
CGR_API cgr_status cgr_cuda_event(const cgr_event *event, cudaEvent_t *out);

/*
 * Makes `stream` wait, on the device, for the event's latest record (as
 * cudaStreamWaitEvent(stream, cgr_cuda_event(event), 0) does), so a
 * binding with no CUDA API of its own (Python through ctypes) can order
 * its stream after a step in one call: the host does not wait. The stream
 * may belong to any CUDA runtime in the process. Errors:
 * CGR_E_INVALID_ARGUMENT (NULL event), CGR_E_UNSUPPORTED (a host-backend
 * runtime), CGR_E_CUDA. Same thread rules as the runtime.
 */
CGR_API cgr_status cgr_cuda_event_wait(const cgr_event *event,
                                       cudaStream_t stream);

/*
 * Inside a step function: the step's work is `graph`, a CUDA graph the
 * caller built or captured elsewhere (PyTorch's torch.cuda.CUDAGraph with
 * keep_graph=True gives it as raw_cuda_graph()), for this run's bucket
 * and buffer set. While cgr captures the step, the graph becomes a child
 * graph node of cgr's graph (CUDA copies it: the caller may destroy its
 * graph afterwards, but the memory its nodes read and write must outlive
 * the runtime, or every replay of the bucket reads freed memory); cgr's
 * own nodes (the in-graph load, the feedback copies) are ordered before
 * and after it. In a warm-up or eager run there is nothing to capture
 * into: the call returns CGR_E_INVALID_STATE, and the step must do the
 * same work eagerly on cgr_cuda_step_stream instead (check
 * cgr_step_is_capturing first). CUDA refuses a child graph that holds
 * memory allocation or free nodes (PyTorch's cudaMallocAsync allocator
 * makes them) or conditional nodes: CGR_E_CUDA. A step that ignores a
 * failure here still fails its run. Errors: CGR_E_INVALID_ARGUMENT (NULL),
 * CGR_E_INVALID_STATE (not capturing), CGR_E_UNSUPPORTED (the host
 * backend), CGR_E_CUDA (the node could not be added; the capture then
 * fails). Call only from inside the step function.
 */
CGR_API cgr_status cgr_cuda_step_graph(cgr_step *step, cudaGraph_t graph);

#ifdef __cplusplus
}
#endif

#endif /* CGR_CGR_CUDA_H */
