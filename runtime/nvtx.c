#define _GNU_SOURCE /* syscall() */
#include "runtime/nvtx.h"

#ifdef CGR_HAVE_NVTX

#include <pthread.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <nvtx3/nvToolsExt.h>
#ifdef CGR_HAVE_CUDA
#include <nvtx3/nvToolsExtCudaRt.h>
#endif

_Atomic int cgr__nvtx_tool_ = -1;

int cgr__nvtx_detect(void) {
  int tool = getenv("NVTX_INJECTION64_PATH") != NULL ||
             getenv("NVTX_INJECTION32_PATH") != NULL;
  atomic_store_explicit(&cgr__nvtx_tool_, tool, memory_order_relaxed);
  return tool;
}

static pthread_once_t once = PTHREAD_ONCE_INIT;
static nvtxDomainHandle_t domain;
static nvtxStringHandle_t strings[CGR__NVTX_RANGE_COUNT];

static const char *const messages[CGR__NVTX_RANGE_COUNT] = {
#define CGR__NVTX_MESSAGE_(name, message) message,
    CGR__NVTX_RANGE_LIST(CGR__NVTX_MESSAGE_)
#undef CGR__NVTX_MESSAGE_
};

static void register_domain(void) {
  domain = nvtxDomainCreateA("cgr");
  for (int i = 0; i < CGR__NVTX_RANGE_COUNT; ++i)
    strings[i] = nvtxDomainRegisterStringA(domain, messages[i]);
}

void cgr__nvtx_push(cgr__nvtx_range range, uint64_t payload) {
  pthread_once(&once, register_domain);
  nvtxEventAttributes_t attributes = {0};
  attributes.version = NVTX_VERSION;
  attributes.size = NVTX_EVENT_ATTRIB_STRUCT_SIZE;
  attributes.messageType = NVTX_MESSAGE_TYPE_REGISTERED;
  attributes.message.registered = strings[range];
  attributes.payloadType = NVTX_PAYLOAD_TYPE_UNSIGNED_INT64;
  attributes.payload.ullValue = payload;
  nvtxDomainRangePushEx(domain, &attributes);
}

void cgr__nvtx_pop(void) {
  pthread_once(&once, register_domain);
  nvtxDomainRangePop(domain);
}

/* Every entry point goes through the once first: NVTX initializes itself
 * lazily on its first call, and that first call must not race another. */
void cgr__nvtx_name_thread(const char *name) {
  pthread_once(&once, register_domain);
  nvtxNameOsThreadA((uint32_t)syscall(SYS_gettid), name);
}

void cgr__nvtx_name_cuda_stream(void *cuda_stream, const char *name) {
#ifdef CGR_HAVE_CUDA
  pthread_once(&once, register_domain);
  nvtxNameCudaStreamA((cudaStream_t)cuda_stream, name);
#else
  (void)cuda_stream;
  (void)name;
#endif
}

#endif /* CGR_HAVE_NVTX */
