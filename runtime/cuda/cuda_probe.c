/*
 * Is CUDA usable here? Answers without creating a context or a stream, so
 * every cgr_runtime_create (and CGR_BACKEND_AUTO on a machine without a GPU)
 * can afford to ask. After the first call in a process the driver is loaded
 * and the answer costs a few queries.
 *
 * The reason string is what a user reads when cgr falls back to the host
 * backend or refuses CGR_BACKEND=cuda, so each failure names its cause in
 * words and, where CUDA gave one, the CUDA error. A device this build has
 * no code for is refused too (device_code.h), from the build's list of
 * architectures and the device's compute capability: no context needed.
 */
#include "runtime/backend.h"

#include <stdarg.h>
#include <stdio.h>

#include <cuda_runtime_api.h>

#include "runtime/cuda/device_code.h"

static void say(char *why, size_t why_size, const char *format, ...)
    __attribute__((format(printf, 3, 4)));

static void say(char *why, size_t why_size, const char *format, ...) {
  if (why == NULL || why_size == 0)
    return;
  va_list args;
  va_start(args, format);
  vsnprintf(why, why_size, format, args);
  va_end(args);
}

/* A failed query leaves CUDA's last error set; the probe must not hand it
 * to whatever CUDA call the application makes next. */
static cgr_status no_device(cudaError_t e) {
  if (e != cudaSuccess)
    (void)cudaGetLastError();
  return CGR_E_NO_DEVICE;
}

/* The CUDA version the linked runtime library implements (it can differ
 * from the headers this file was compiled with when libcudart is shared). */
static int runtime_version(void) {
  int version = 0;
  if (cudaRuntimeGetVersion(&version) != cudaSuccess || version <= 0) {
    (void)cudaGetLastError();
    version = CUDART_VERSION;
  }
  return version;
}

static void say_driver_too_old(char *why, size_t why_size, int driver,
                               int runtime) {
  /* Minor-version compatibility: a runtime needs a driver of its own major
   * version or newer, not of its exact minor version. */
  say(why, why_size,
      "CUDA driver too old: it supports CUDA %d.%d, this build's runtime "
      "(CUDA %d.%d) needs %d.0 or newer",
      driver / 1000, (driver % 1000) / 10, runtime / 1000,
      (runtime % 1000) / 10, runtime / 1000);
}

cgr_status cgr__cuda_probe(int device, char *why, size_t why_size) {
  if (why != NULL && why_size > 0)
    why[0] = '\0';

  /* cudaDriverGetVersion does not initialize the driver and reports 0 when
   * libcuda cannot be loaded: the cheapest way to tell "no driver". */
  int driver = 0;
  cudaError_t e = cudaDriverGetVersion(&driver);
  if (e != cudaSuccess) {
    say(why, why_size, "cudaDriverGetVersion failed: %s: %s",
        cudaGetErrorName(e), cudaGetErrorString(e));
    return no_device(e);
  }
  if (driver == 0) {
    say(why, why_size, "no CUDA driver found (cudaDriverGetVersion reports 0)");
    return no_device(cudaSuccess);
  }
  int runtime = runtime_version();
  if (driver / 1000 < runtime / 1000) {
    say_driver_too_old(why, why_size, driver, runtime);
    return no_device(cudaSuccess);
  }

  /* This initializes the driver (once per process); failures here are the
   * driver's view of the machine. */
  int count = 0;
  e = cudaGetDeviceCount(&count);
  if (e == cudaErrorInsufficientDriver) {
    say_driver_too_old(why, why_size, driver, runtime);
    return no_device(e);
  }
  if (e != cudaSuccess) {
    say(why, why_size, "no CUDA device (cudaGetDeviceCount: %s: %s)",
        cudaGetErrorName(e), cudaGetErrorString(e));
    return no_device(e);
  }
  if (count <= 0) {
    say(why, why_size, "no CUDA device (cudaGetDeviceCount reports 0)");
    return no_device(cudaSuccess);
  }
  if (device < 0 || device >= count) {
    say(why, why_size, "device ordinal %d out of range: %d device(s)", device,
        count);
    return no_device(cudaSuccess);
  }

  /* A device in compute-prohibited mode is listed but refuses every
   * context, so cgr_runtime_create would fail later for a reason this can
   * give now. */
  int mode = cudaComputeModeDefault;
  e = cudaDeviceGetAttribute(&mode, cudaDevAttrComputeMode, device);
  if (e != cudaSuccess) {
    say(why, why_size, "cudaDeviceGetAttribute(ComputeMode, %d) failed: %s: %s",
        device, cudaGetErrorName(e), cudaGetErrorString(e));
    return no_device(e);
  }
  if (mode == cudaComputeModeProhibited) {
    say(why, why_size,
        "device %d is in compute-prohibited mode (nvidia-smi -c)", device);
    return no_device(cudaSuccess);
  }

  /* Properties do not need a context; only the name and compute capability
   * are read, fields that exist in every CUDA from 12.4 to 13.0. */
  struct cudaDeviceProp prop;
  e = cudaGetDeviceProperties(&prop, device);
  if (e != cudaSuccess) {
    say(why, why_size, "cudaGetDeviceProperties(%d) failed: %s: %s", device,
        cudaGetErrorName(e), cudaGetErrorString(e));
    return no_device(e);
  }
  prop.name[sizeof prop.name - 1] = '\0';

  /* A device the build has no code for would fail every launch: refused
   * here, so AUTO falls back to the host backend saying why. A list this
   * cannot read (-1) is left to the backend's check with CUDA. */
  const char *architectures = cgr__cuda_architectures();
  if (cgr__cuda_code_fits(architectures, prop.major, prop.minor) == 0) {
    say(why, why_size,
        "CUDA device %d has compute capability %d.%d and this build has no "
        "code for it (built for CUDA architectures %s); add %d%d to "
        "CMAKE_CUDA_ARCHITECTURES and rebuild",
        device, prop.major, prop.minor, architectures, prop.major, prop.minor);
    return no_device(cudaSuccess);
  }
  say(why, why_size, "%s, sm_%d%d, driver %d.%d", prop.name, prop.major,
      prop.minor, driver / 1000, (driver % 1000) / 10);
  return CGR_OK;
}
