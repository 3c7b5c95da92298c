/*
 * NCCL on the CUDA backend: the library loaded at run time, a group's
 * communicator, and the collectives a step enqueues on its stream.
 *
 * Loading. libcgr names no libnccl (tests/install.c checks its NEEDED
 * entries and its symbols): the library is opened with dlopen when a group
 * first needs it, as $CGR_NCCL_LIBRARY when that is set, else as
 * libnccl.so.2, then libnccl.so, through the loader's search path (a
 * system package, LD_LIBRARY_PATH, or the nvidia-nccl-cu13 wheel's lib/
 * named in CGR_NCCL_LIBRARY). Every function cgr calls is looked up once,
 * under pthread_once, and a library older than 2.10 (no bfloat16) or of
 * another major version is refused. NCCL carries its own CUDA runtime;
 * it meets cgr's private one (CMakeLists.txt's prelink) in the driver:
 * device ordinals, primary contexts and cudaStream_t handles are the
 * driver's, so a stream of cgr's is a stream of NCCL's.
 *
 * The NCCL rules that matter for cgr's graphs (NCCL's user guide, "Using
 * NCCL with CUDA Graphs", "Communicators", "Error handling and
 * communicator abort"):
 *
 * - Same collectives, same order, on every rank. A collective is matched
 *   across ranks by its position in the communicator's sequence, not by
 *   its arguments: a rank that captures one all-reduce fewer, or in
 *   another order, hangs or corrupts the others. Whether a collective is
 *   captured is itself part of the match: either every rank captured it,
 *   and every rank launches the graph that holds it, or none did. Hence
 *   the group captures every rank at once, in one order, and compares the
 *   ranks' collectives per bucket and set afterwards (cgr_group.h).
 * - A graph launch that holds a collective is a collective: every rank's
 *   graph of that capture must be launched, once per step, and each rank
 *   launches the graph derived from its own capture, never another's.
 * - Several GPUs in one process: NCCL warns that cudaGraphLaunch may block
 *   until the peers' launches arrive, so launching every rank's graph from
 *   one thread can deadlock. A group of several CUDA ranks in one process
 *   launches each rank's graph from a thread of its own (replay/
 *   group_run.c; as it runs its warm-ups and eager steps), and captures in
 *   cudaStreamCaptureModeThreadLocal (cuda_backend.c), the mode NCCL asks
 *   for when each thread drives another GPU. One process per GPU stays the
 *   most robust deployment, the one NCCL recommends, and the cheaper one
 *   (no thread per step).
 * - Graphs before communicators: NCCL 2.26 and later wait in
 *   ncclCommDestroy until every graph that captured a collective of the
 *   communicator is destroyed, so cgr_group_destroy destroys the ranks'
 *   runtimes (their graphs) first.
 * - Mixing captured and uncaptured collectives on one communicator (the
 *   warm-ups run eagerly, the step's graphs replay later; an eager step
 *   between replays) is supported through a mechanism that
 *   NCCL_GRAPH_MIXING_SUPPORT switches (on by default). It serializes
 *   around every captured collective, which costs time, and NCCL has seen
 *   it deadlock CUDA when graphs of several communicators are launched
 *   from one thread. Setting NCCL_GRAPH_MIXING_SUPPORT=0 is correct only
 *   while no uncaptured collective is issued on a communicator that has a
 *   graph launch outstanding: in cgr, a step that replays graphs only,
 *   with its eager runs (warm-ups, CGR_REPLAY_EAGER) drained first. cgr
 *   neither sets nor reads it.
 * - ncclCommInitAll makes every rank's communicator in one call, in one
 *   process (no network bootstrap, no unique id to share, no inter-node
 *   communication); each device may appear once. Across processes a
 *   caller makes its own communicator with ncclCommInitRank and a unique
 *   id it distributes. Both create blocking communicators: a collective
 *   returns once enqueued, never ncclInProgress.
 * - Buffers are the ranks' ordinary device memory (slots, scratch).
 *   Registering them with the communicator (ncclCommRegister, or
 *   allocating with ncclMemAlloc for NVLS/CollNet zero-copy paths, or
 *   NCCL_GRAPH_REGISTER for captured collectives) is an optimization for
 *   later, measured first: registered memory must outlive every graph
 *   that uses it.
 * - A collective whose peers never come (a rank failed, or called another
 *   collective) does not return an error: its kernel spins on the GPU and
 *   the stream never drains. NCCL's way out is to poll
 *   ncclCommGetAsyncError from the host (cgr__nccl_comm_check) and, on an
 *   error or a timeout of the caller's choosing, ncclCommAbort every
 *   rank's communicator (cgr__nccl_comm_abort): the stuck kernels end,
 *   their results are garbage, and the communicators are gone (an aborted
 *   communicator is never destroyed as well). The group is then broken.
 *
 * Errors name the NCCL call, ncclGetErrorString's words for its result,
 * and ncclGetLastError's detail; a failure that left a sticky CUDA error
 * on the device is CGR_E_DEVICE_LOST, by cuda_errors.h's table. Nothing
 * here aborts.
 */
#define _GNU_SOURCE /* dladdr */

#include "runtime/cuda/cuda_nccl.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cuda_runtime_api.h>
#include <nccl.h>

#include "runtime/cuda/cuda_errors.h"
#include "runtime/runtime.h"

/* The oldest NCCL cgr uses: 2.10 has ncclBfloat16 and captures safely. */
#define OLDEST_NCCL 21000

/* ---- the library ------------------------------------------------------ */

typedef ncclResult_t (*get_version_fn)(int *version);
typedef ncclResult_t (*comm_init_all_fn)(ncclComm_t *comms, int count,
                                         const int *devices);
typedef ncclResult_t (*comm_fn)(ncclComm_t comm);
typedef ncclResult_t (*get_unique_id_fn)(ncclUniqueId *id);
typedef ncclResult_t (*comm_int_fn)(const ncclComm_t comm, int *out);
typedef ncclResult_t (*comm_init_rank_fn)(ncclComm_t *comm, int ranks,
                                          ncclUniqueId id, int rank);
typedef ncclResult_t (*comm_get_async_error_fn)(ncclComm_t comm,
                                                ncclResult_t *async_error);
typedef const char *(*get_error_string_fn)(ncclResult_t result);
typedef const char *(*get_last_error_fn)(ncclComm_t comm);
typedef ncclResult_t (*all_reduce_fn)(const void *send, void *recv,
                                      size_t count, ncclDataType_t type,
                                      ncclRedOp_t op, ncclComm_t comm,
                                      cudaStream_t stream);
typedef ncclResult_t (*all_gather_fn)(const void *send, void *recv,
                                      size_t count, ncclDataType_t type,
                                      ncclComm_t comm, cudaStream_t stream);
typedef ncclResult_t (*broadcast_fn)(const void *send, void *recv, size_t count,
                                     ncclDataType_t type, int root,
                                     ncclComm_t comm, cudaStream_t stream);

typedef struct nccl_library {
  void *handle;
  char path[256]; /* the file dlopen found, for messages */
  int version;
  get_version_fn get_version;
  comm_init_all_fn comm_init_all;
  get_unique_id_fn get_unique_id;
  comm_init_rank_fn comm_init_rank;
  comm_int_fn comm_count, comm_user_rank, comm_cu_device;
  comm_fn comm_destroy;
  comm_fn comm_abort;
  comm_get_async_error_fn comm_get_async_error;
  get_error_string_fn get_error_string;
  get_last_error_fn get_last_error;
  all_reduce_fn all_reduce;
  all_gather_fn all_gather;
  broadcast_fn broadcast;
} nccl_library;

/* Every function cgr calls, and where its address goes. */
typedef struct nccl_symbol {
  const char *name;
  size_t offset;
} nccl_symbol;

#define SYMBOL(field, name)                                                    \
  { name, offsetof(nccl_library, field) }
static const nccl_symbol symbols[] = {
    SYMBOL(get_version, "ncclGetVersion"),
    SYMBOL(comm_init_all, "ncclCommInitAll"),
    SYMBOL(get_unique_id, "ncclGetUniqueId"),
    SYMBOL(comm_init_rank, "ncclCommInitRank"),
    SYMBOL(comm_count, "ncclCommCount"),
    SYMBOL(comm_user_rank, "ncclCommUserRank"),
    SYMBOL(comm_cu_device, "ncclCommCuDevice"),
    SYMBOL(comm_destroy, "ncclCommDestroy"),
    SYMBOL(comm_abort, "ncclCommAbort"),
    SYMBOL(comm_get_async_error, "ncclCommGetAsyncError"),
    SYMBOL(get_error_string, "ncclGetErrorString"),
    SYMBOL(all_reduce, "ncclAllReduce"),
    SYMBOL(all_gather, "ncclAllGather"),
    SYMBOL(broadcast, "ncclBroadcast"),
};
#undef SYMBOL

/* Stores dlsym's answer (a void *) in a function-pointer field: copying
 * the bytes is the conversion POSIX guarantees. */
static void set_symbol(nccl_library *lib, size_t offset, void *address) {
  memcpy((char *)lib + offset, &address, sizeof address);
}

static void *symbol_at(const nccl_library *lib, size_t offset) {
  void *address = NULL;
  memcpy(&address, (const char *)lib + offset, sizeof address);
  return address;
}

/* dlopen's own words, or a fallback. */
static const char *dl_reason(void) {
  const char *reason = dlerror();
  return reason != NULL ? reason : "no reason given";
}

/* Resolves every symbol and checks the version; on failure closes the
 * library and says why. */
static cgr_status library_resolve(nccl_library *lib, const char *name,
                                  char *why, size_t size) {
  for (size_t i = 0; i < sizeof symbols / sizeof symbols[0]; i++) {
    (void)dlerror();
    void *address = dlsym(lib->handle, symbols[i].name);
    if (address == NULL) {
      snprintf(why, size,
               "'%s' is not a usable NCCL library: %s is missing "
               "(%s)",
               name, symbols[i].name, dl_reason());
      return CGR_E_UNSUPPORTED;
    }
    set_symbol(lib, symbols[i].offset, address);
  }
  /* Optional: NCCL 2.13 and later say more of a failure through it. */
  (void)dlerror();
  set_symbol(lib, offsetof(nccl_library, get_last_error),
             dlsym(lib->handle, "ncclGetLastError"));
  Dl_info info;
  if (dladdr(symbol_at(lib, symbols[0].offset), &info) != 0 &&
      info.dli_fname != NULL)
    snprintf(lib->path, sizeof lib->path, "%s", info.dli_fname);
  else
    snprintf(lib->path, sizeof lib->path, "%s", name);
  ncclResult_t result = lib->get_version(&lib->version);
  if (result != ncclSuccess) {
    snprintf(why, size, "ncclGetVersion in %s failed: %s", lib->path,
             lib->get_error_string(result));
    return CGR_E_UNSUPPORTED;
  }
  if (lib->version / 10000 != 2 || lib->version < OLDEST_NCCL) {
    snprintf(why, size,
             "%s is NCCL version code %d: cgr needs NCCL 2.10 or "
             "later, of major version 2 (built against %d.%d.%d)",
             lib->path, lib->version, NCCL_MAJOR, NCCL_MINOR, NCCL_PATCH);
    return CGR_E_UNSUPPORTED;
  }
  return CGR_OK;
}

/* Opens `path`, or where the loader looks when it is NULL. */
static cgr_status library_open(const char *path, nccl_library *lib, char *why,
                               size_t size) {
  memset(lib, 0, sizeof *lib);
  const char *names[2] = {"libnccl.so.2", "libnccl.so"};
  size_t count = 2;
  const char *override = getenv("CGR_NCCL_LIBRARY");
  const char *source = "";
  if (path == NULL && override != NULL && override[0] != '\0') {
    path = override;
    source = "CGR_NCCL_LIBRARY=";
  }
  if (path != NULL) {
    names[0] = path;
    count = 1;
  }
  char tried[384] = "";
  for (size_t i = 0; i < count && lib->handle == NULL; i++) {
    /* Local: NCCL's symbols serve cgr only, never the application's own
     * lookups (it may load another NCCL, through PyTorch). */
    lib->handle = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
    if (lib->handle == NULL) {
      size_t used = strlen(tried);
      snprintf(tried + used, sizeof tried - used, "%s%s", used ? "; " : "",
               dl_reason());
    } else {
      cgr_status status = library_resolve(lib, names[i], why, size);
      if (status != CGR_OK) {
        dlclose(lib->handle);
        memset(lib, 0, sizeof *lib);
        return status;
      }
      return CGR_OK;
    }
  }
  if (path != NULL)
    snprintf(why, size, "NCCL could not be loaded from %s%s: %s", source, path,
             tried);
  else
    snprintf(why, size,
             "NCCL could not be loaded (libnccl.so.2, then libnccl.so, "
             "through the loader's search path; CGR_NCCL_LIBRARY names "
             "another file): %s",
             tried);
  return CGR_E_UNSUPPORTED;
}

/* The process's library: loaded once, kept until exit (NCCL's threads
 * and communicators may outlive any one group). */
static pthread_once_t loaded = PTHREAD_ONCE_INIT;
static nccl_library nccl;
static cgr_status load_status = CGR_E_UNSUPPORTED;
static char load_reason[CGR__ERROR_MESSAGE_SIZE];

static void load_once(void) {
  load_status = library_open(NULL, &nccl, load_reason, sizeof load_reason);
}

/* CGR_OK once the library is there; else CGR_E_UNSUPPORTED with why. */
static cgr_status require_nccl(cgr__error *err, const char *func) {
  pthread_once(&loaded, load_once);
  if (load_status != CGR_OK)
    return cgr__fail(err, load_status, func, "%s", load_reason);
  return CGR_OK;
}

cgr_status cgr__nccl_library(cgr__error *err, int *version) {
  if (version != NULL)
    *version = 0;
  CGR__CHECK(require_nccl(err, __func__));
  if (version != NULL)
    *version = nccl.version;
  return CGR_OK;
}

cgr_status cgr__nccl_library_probe(const char *path, int *version, char *why,
                                   size_t why_size) {
  char reason[CGR__ERROR_MESSAGE_SIZE] = "";
  if (version != NULL)
    *version = 0;
  nccl_library lib;
  cgr_status status = library_open(path, &lib, reason, sizeof reason);
  if (status == CGR_OK) {
    if (version != NULL)
      *version = lib.version;
    dlclose(lib.handle);
  }
  if (why != NULL && why_size > 0)
    snprintf(why, why_size, "%s", reason);
  return status;
}

/* ---- messages ------------------------------------------------------- */

/* NCCL's words for a result and its last error's detail. */
static void nccl_words(ncclResult_t result, ncclComm_t comm, char *out,
                       size_t size) {
  const char *text = nccl.get_error_string(result);
  const char *detail =
      nccl.get_last_error != NULL ? nccl.get_last_error(comm) : NULL;
  if (detail != NULL && detail[0] != '\0')
    snprintf(out, size, "%s (%s)", text, detail);
  else
    snprintf(out, size, "%s", text);
}

/*
 * Reports a failed NCCL call on `stream` (NULL: none). NCCL runs on its
 * own CUDA runtime, so a CUDA failure inside it is not cgr's last error;
 * a sticky one is the context's, though, and cgr's next call on the
 * stream sees it. Querying a capturing stream would invalidate the
 * capture, so only an idle stream is asked.
 */
static cgr_status nccl_fail(cgr__error *err, const char *func,
                            cudaStream_t stream, ncclResult_t result,
                            ncclComm_t comm, const char *call) {
  char words[256];
  nccl_words(result, comm, words, sizeof words);
  cudaError_t e = cudaSuccess;
  if (stream != NULL && result == ncclUnhandledCudaError) {
    enum cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
    e = cudaStreamIsCapturing(stream, &capture);
    if (e == cudaSuccess && capture == cudaStreamCaptureStatusNone)
      e = cudaStreamQuery(stream);
    if (e == cudaErrorNotReady)
      e = cudaSuccess;
    (void)cudaGetLastError();
  }
  if (e != cudaSuccess)
    return cgr__fail_cuda(err, cgr__cuda_status_of((int)e, CGR_E_CUDA), (int)e,
                          func,
                          "%s failed: %s; the device reports %s "
                          "(%s)",
                          call, words, cudaGetErrorName(e),
                          cudaGetErrorString(e));
  return cgr__fail(err, CGR_E_CUDA, func, "%s failed: %s", call, words);
}

/* ---- communicators ---------------------------------------------------- */

/* The ranks' devices, checked: CUDA runtimes, each device once. */
static cgr_status rank_devices(cgr_runtime *const *rts, int ranks,
                               cgr__error *err, const char *func,
                               int *devices) {
  for (int r = 0; r < ranks; r++) {
    const cgr_runtime *rt = rts[r];
    if (rt == NULL)
      return cgr__fail(err, CGR_E_INVALID_ARGUMENT, func,
                       "rank %d has no runtime", r);
    if (rt->kind != CGR_BACKEND_CUDA)
      return cgr__fail(err, CGR_E_INVALID_ARGUMENT, func,
                       "rank %d runs on the %s backend: NCCL needs CUDA "
                       "runtimes",
                       r, cgr_backend_name(rt));
    devices[r] = rt->config.device;
    for (int q = 0; q < r; q++)
      if (devices[q] == devices[r])
        return cgr__fail(err, CGR_E_INVALID_ARGUMENT, func,
                         "ranks %d and %d are both on CUDA device %d: NCCL "
                         "needs one device per rank",
                         q, r, devices[r]);
  }
  return CGR_OK;
}

cgr_status cgr__nccl_comm_create(cgr_runtime *const *rts, int ranks,
                                 cgr__error *err, void **handles) {
  if (handles != NULL && ranks > 0)
    for (int r = 0; r < ranks && r < CGR_GROUP_MAX_RANKS; r++)
      handles[r] = NULL;
  if (rts == NULL || handles == NULL)
    return cgr__fail(err, CGR_E_INVALID_ARGUMENT, __func__,
                     "argument '%s' is NULL", rts == NULL ? "rts" : "handles");
  if (ranks < 1 || ranks > CGR_GROUP_MAX_RANKS)
    return cgr__fail(err, CGR_E_INVALID_ARGUMENT, __func__,
                     "ranks is %d, not 1 to %d", ranks, CGR_GROUP_MAX_RANKS);
  int devices[CGR_GROUP_MAX_RANKS];
  CGR__CHECK(rank_devices(rts, ranks, err, __func__, devices));
  CGR__CHECK(require_nccl(err, __func__));

  /* NCCL sets each device while it builds; the caller's stays current. */
  int current = -1;
  cudaError_t e = cudaGetDevice(&current);
  ncclComm_t comms[CGR_GROUP_MAX_RANKS] = {0};
  ncclResult_t result = nccl.comm_init_all(comms, ranks, devices);
  if (e == cudaSuccess)
    e = cudaSetDevice(current);
  if (e != cudaSuccess)
    (void)cudaGetLastError();
  if (result != ncclSuccess) {
    /* NCCL does not say that a failed ncclCommInitAll leaves usable
     * communicators in the array: nothing in it is destroyed here, as a
     * leak is better than freeing twice. */
    char call[96];
    snprintf(call, sizeof call, "ncclCommInitAll(%d ranks, devices %d..%d)",
             ranks, devices[0], devices[ranks - 1]);
    return nccl_fail(err, __func__, NULL, result, NULL, call);
  }
  for (int r = 0; r < ranks; r++)
    handles[r] = comms[r];
  return CGR_OK;
}

/* ---- across processes ------------------------------------------------- */

cgr_status cgr__nccl_unique_id(char *hex, size_t size, cgr__error *err) {
  if (hex == NULL || size < 2 * NCCL_UNIQUE_ID_BYTES + 1)
    return cgr__fail(err, CGR_E_INVALID_ARGUMENT, __func__,
                     "no room for %d hex digits", 2 * NCCL_UNIQUE_ID_BYTES);
  CGR__CHECK(require_nccl(err, "cgr_group_id_create"));
  ncclUniqueId id;
  ncclResult_t result = nccl.get_unique_id(&id);
  if (result != ncclSuccess)
    return nccl_fail(err, "cgr_group_id_create", NULL, result, NULL,
                     "ncclGetUniqueId");
  const unsigned char *bytes = (const unsigned char *)id.internal;
  for (int i = 0; i < NCCL_UNIQUE_ID_BYTES; i++)
    snprintf(hex + 2 * i, 3, "%02x", bytes[i]);
  return CGR_OK;
}

static int hex_digit(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

cgr_status cgr__nccl_comm_init_rank(cgr_runtime *rt, const char *hex, int rank,
                                    int ranks, cgr__error *err, void **handle) {
  *handle = NULL;
  ncclUniqueId id;
  if (strlen(hex) != 2 * NCCL_UNIQUE_ID_BYTES)
    return cgr__fail(err, CGR_E_INVALID_ARGUMENT, __func__,
                     "the id's NCCL part has %zu hex digits, not %d: not "
                     "cgr_group_id_create's",
                     strlen(hex), 2 * NCCL_UNIQUE_ID_BYTES);
  for (int i = 0; i < NCCL_UNIQUE_ID_BYTES; i++) {
    int high = hex_digit(hex[2 * i]), low = hex_digit(hex[2 * i + 1]);
    if (high < 0 || low < 0)
      return cgr__fail(err, CGR_E_INVALID_ARGUMENT, __func__,
                       "the id's NCCL part has a character that is not a hex "
                       "digit at %d",
                       2 * i + (high < 0 ? 0 : 1));
    id.internal[i] = (char)(high * 16 + low);
  }
  if (rt == NULL || rt->kind != CGR_BACKEND_CUDA)
    return cgr__fail(err, CGR_E_INVALID_ARGUMENT, __func__,
                     "NCCL needs a CUDA runtime");
  CGR__CHECK(require_nccl(err, __func__));
  int device = rt->config.device;
  int current = -1;
  cudaError_t e = cudaGetDevice(&current);
  if (e == cudaSuccess)
    e = cudaSetDevice(device);
  if (e != cudaSuccess) {
    (void)cudaGetLastError();
    return cgr__fail_cuda(err, cgr__cuda_status_of((int)e, CGR_E_CUDA), (int)e,
                          __func__, "cudaSetDevice(%d) failed: %s", device,
                          cudaGetErrorString(e));
  }
  /* Blocks until every rank called it: NCCL's bootstrap over the network
   * from rank 0's address in the id. */
  ncclComm_t comm = NULL;
  ncclResult_t result = nccl.comm_init_rank(&comm, ranks, id, rank);
  if (current >= 0 && cudaSetDevice(current) != cudaSuccess)
    (void)cudaGetLastError();
  if (result != ncclSuccess) {
    char call[96];
    snprintf(call, sizeof call,
             "ncclCommInitRank(%d ranks, rank %d, device %d)", ranks, rank,
             device);
    return nccl_fail(err, __func__, NULL, result, NULL, call);
  }
  *handle = comm;
  return CGR_OK;
}

cgr_status cgr__nccl_comm_info(void *handle, int *rank, int *ranks, int *device,
                               cgr__error *err) {
  CGR__CHECK(require_nccl(err, __func__));
  ncclComm_t comm = handle;
  ncclResult_t result = nccl.comm_user_rank(comm, rank);
  const char *call = "ncclCommUserRank";
  if (result == ncclSuccess) {
    result = nccl.comm_count(comm, ranks);
    call = "ncclCommCount";
  }
  if (result == ncclSuccess) {
    result = nccl.comm_cu_device(comm, device);
    call = "ncclCommCuDevice";
  }
  if (result != ncclSuccess)
    return nccl_fail(err, __func__, NULL, result, comm, call);
  return CGR_OK;
}

cgr_status cgr__nccl_comm_check(void *const *handles, int ranks,
                                cgr__error *err) {
  if (handles == NULL || ranks < 1 || ranks > CGR_GROUP_MAX_RANKS)
    return cgr__fail(err, CGR_E_INVALID_ARGUMENT, __func__,
                     "no communicator handles (%d ranks)", ranks);
  CGR__CHECK(require_nccl(err, __func__));
  for (int r = 0; r < ranks; r++) {
    ncclComm_t comm = handles[r];
    if (comm == NULL)
      continue;
    ncclResult_t async_error = ncclSuccess;
    ncclResult_t result = nccl.comm_get_async_error(comm, &async_error);
    if (result != ncclSuccess) {
      char call[64];
      snprintf(call, sizeof call, "ncclCommGetAsyncError(rank %d of %d)", r,
               ranks);
      return nccl_fail(err, __func__, NULL, result, comm, call);
    }
    if (async_error != ncclSuccess && async_error != ncclInProgress) {
      char words[256];
      nccl_words(async_error, comm, words, sizeof words);
      return cgr__fail(err, CGR_E_CUDA, __func__,
                       "rank %d of %d: NCCL reports an asynchronous error: %s",
                       r, ranks, words);
    }
  }
  return CGR_OK;
}

/* Calls `end` on every handle. Only reached with handles from
 * cgr__nccl_comm_create, so the library is loaded; it is checked all the
 * same, as cleanup must not crash. Failures cannot be reported. */
static void end_each(void *const *handles, int ranks, int abort) {
  if (handles == NULL || ranks < 1 || ranks > CGR_GROUP_MAX_RANKS)
    return;
  pthread_once(&loaded, load_once);
  if (load_status != CGR_OK)
    return;
  for (int r = 0; r < ranks; r++)
    if (handles[r] != NULL)
      (void)(abort ? nccl.comm_abort : nccl.comm_destroy)(handles[r]);
}

void cgr__nccl_comm_abort(void *const *handles, int ranks) {
  end_each(handles, ranks, 1);
}

void cgr__nccl_comm_destroy(void *const *handles, int ranks) {
  end_each(handles, ranks, 0);
}

/* ---- collectives ------------------------------------------------------ */

/* NCCL's type for a cgr_dtype, and its name; 0 when there is none. */
static int nccl_type(cgr_dtype dtype, ncclDataType_t *out, const char **name) {
  static const struct {
    ncclDataType_t type;
    const char *name;
  } types[] = {
      [CGR_DTYPE_INT8] = {ncclInt8, "int8"},
      [CGR_DTYPE_UINT8] = {ncclUint8, "uint8"},
      [CGR_DTYPE_INT32] = {ncclInt32, "int32"},
      [CGR_DTYPE_UINT32] = {ncclUint32, "uint32"},
      [CGR_DTYPE_INT64] = {ncclInt64, "int64"},
      [CGR_DTYPE_UINT64] = {ncclUint64, "uint64"},
      [CGR_DTYPE_FLOAT16] = {ncclFloat16, "float16"},
      [CGR_DTYPE_BFLOAT16] = {ncclBfloat16, "bfloat16"},
      [CGR_DTYPE_FLOAT32] = {ncclFloat32, "float32"},
      [CGR_DTYPE_FLOAT64] = {ncclFloat64, "float64"},
  };
  if ((unsigned)dtype >= sizeof types / sizeof types[0])
    return 0;
  *out = types[dtype].type;
  *name = types[dtype].name;
  return 1;
}

/* NCCL's operation for a cgr_reduce_op, and its name; 0 when none. */
static int nccl_op(cgr_reduce_op op, ncclRedOp_t *out, const char **name) {
  static const struct {
    ncclRedOp_t op;
    const char *name;
  } ops[] = {
      [CGR_REDUCE_SUM] = {ncclSum, "sum"},
      [CGR_REDUCE_PROD] = {ncclProd, "prod"},
      [CGR_REDUCE_MAX] = {ncclMax, "max"},
      [CGR_REDUCE_MIN] = {ncclMin, "min"},
  };
  if ((unsigned)op >= sizeof ops / sizeof ops[0])
    return 0;
  *out = ops[op].op;
  *name = ops[op].name;
  return 1;
}

/* A collective in NCCL's terms, checked before anything is loaded. */
typedef struct nccl_call {
  ncclDataType_t type;
  ncclRedOp_t op;
  char name[160]; /* "ncclAllReduce(1024 bfloat16, sum)", for messages */
} nccl_call;

static cgr_status nccl_call_of(const cgr__collective *c, int ranks,
                               cgr__error *err, const char *func,
                               nccl_call *call) {
  const char *type_name = NULL;
  const char *op_name = NULL;
  if (!nccl_type(c->dtype, &call->type, &type_name))
    return cgr__fail(err, CGR_E_INVALID_ARGUMENT, func,
                     "dtype %d is not a cgr_dtype", (int)c->dtype);
  switch (c->kind) {
  case CGR__COLL_ALL_REDUCE:
    if (!nccl_op(c->op, &call->op, &op_name))
      return cgr__fail(err, CGR_E_INVALID_ARGUMENT, func,
                       "op %d is not a cgr_reduce_op", (int)c->op);
    snprintf(call->name, sizeof call->name, "ncclAllReduce(%zu %s, %s)",
             c->count, type_name, op_name);
    return CGR_OK;
  case CGR__COLL_ALL_GATHER:
    snprintf(call->name, sizeof call->name, "ncclAllGather(%zu %s per rank)",
             c->count, type_name);
    return CGR_OK;
  case CGR__COLL_BROADCAST:
    if (c->root < 0 || c->root >= ranks)
      return cgr__fail(err, CGR_E_INVALID_ARGUMENT, func,
                       "broadcast root %d is not a rank of %d", c->root, ranks);
    snprintf(call->name, sizeof call->name,
             "ncclBroadcast(%zu %s from rank %d)", c->count, type_name,
             c->root);
    return CGR_OK;
  }
  return cgr__fail(err, CGR_E_INVALID_ARGUMENT, func,
                   "collective kind %d is unknown", (int)c->kind);
}

cgr_status cgr__nccl_collective(int device, cgr__error *err, void *stream,
                                void *handle, int rank, int ranks,
                                const cgr__collective *c) {
  if (c == NULL)
    return cgr__fail(err, CGR_E_INVALID_ARGUMENT, __func__,
                     "argument 'c' is NULL");
  if (handle == NULL)
    return cgr__fail(err, CGR_E_INVALID_STATE, __func__,
                     "rank %d of %d on CUDA device %d has no NCCL "
                     "communicator",
                     rank, ranks, device);
  nccl_call call;
  CGR__CHECK(nccl_call_of(c, ranks, err, __func__, &call));
  CGR__CHECK(require_nccl(err, __func__));
  ncclComm_t comm = handle;
  cudaStream_t native = stream;
  ncclResult_t result = ncclSuccess;
  switch (c->kind) {
  case CGR__COLL_ALL_REDUCE:
    result = nccl.all_reduce(c->send, c->recv, c->count, call.type, call.op,
                             comm, native);
    break;
  case CGR__COLL_ALL_GATHER:
    result =
        nccl.all_gather(c->send, c->recv, c->count, call.type, comm, native);
    break;
  case CGR__COLL_BROADCAST:
    result = nccl.broadcast(c->send, c->recv, c->count, call.type, c->root,
                            comm, native);
    break;
  }
  if (result == ncclSuccess)
    return CGR_OK;
  size_t used = strlen(call.name);
  snprintf(call.name + used, sizeof call.name - used,
           " on rank %d of %d (device %d)", rank, ranks, device);
  return nccl_fail(err, __func__, native, result, comm, call.name);
}
