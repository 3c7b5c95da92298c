#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "runtime/fault.h"
#include "runtime/runtime.h"

static pthread_once_t once = PTHREAD_ONCE_INIT;
static cgr__env env;

static int parse_int(const char *text, int *out) {
  char *end = NULL;
  long value = strtol(text, &end, 10);
  if (end == text || *end != '\0' || value < 0 || value > 1 << 20)
    return 0;
  *out = (int)value;
  return 1;
}

static void read_env(void) {
  memset(&env, 0, sizeof env);
  const char *backend = getenv("CGR_BACKEND");
  if (backend != NULL && backend[0] != '\0') {
    env.has_backend = 1;
    if (strcasecmp(backend, "auto") == 0)
      env.backend = CGR_BACKEND_AUTO;
    else if (strcasecmp(backend, "cuda") == 0)
      env.backend = CGR_BACKEND_CUDA;
    else if (strcasecmp(backend, "host") == 0)
      env.backend = CGR_BACKEND_HOST;
    else {
      env.has_backend = 0;
      snprintf(env.problem, sizeof env.problem,
               "CGR_BACKEND='%.40s' is not auto, cuda or host", backend);
    }
  }
  const char *device = getenv("CGR_DEVICE");
  if (device != NULL && device[0] != '\0') {
    env.has_device = parse_int(device, &env.device);
    if (!env.has_device)
      snprintf(env.problem, sizeof env.problem,
               "CGR_DEVICE='%.40s' is not a device ordinal", device);
  }
  const char *nvtx = getenv("CGR_NVTX");
  if (nvtx != NULL && nvtx[0] != '\0') {
    env.has_nvtx = parse_int(nvtx, &env.nvtx) && env.nvtx <= 1;
    if (!env.has_nvtx)
      snprintf(env.problem, sizeof env.problem,
               "CGR_NVTX='%.40s' is not 0 or 1", nvtx);
  }
  /* Fault injection for a person's own tests (README.md): the plans are
   * armed here, once, and count from the first create on. */
  const char *fault = getenv("CGR_FAULT");
  if (fault != NULL && fault[0] != '\0') {
    char why[96];
    if (!cgr__fault_arm_text(fault, why, sizeof why))
      snprintf(env.problem, sizeof env.problem, "CGR_FAULT='%.24s%s': %s",
               fault, strlen(fault) > 24 ? "..." : "", why);
  }
}

const cgr__env *cgr__env_get(void) {
  pthread_once(&once, read_env);
  return &env;
}

void cgr__env_reload(void) {
  pthread_once(&once, read_env);
  read_env();
}
