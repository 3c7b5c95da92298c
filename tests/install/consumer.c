/* Links an installed cgr and runs it: creates a runtime on the host
 * backend, checks that the header and the library agree on the version,
 * prints "consumer ok <version> <backend>". Exit 1 on any failure. */
#include <stdio.h>
#include <string.h>

#include <cgr/cgr.h>

int main(void) {
  if (strcmp(cgr_version_string(), CGR_VERSION_STRING) != 0) {
    fprintf(stderr, "consumer: header %s, library %s\n", CGR_VERSION_STRING,
            cgr_version_string());
    return 1;
  }
  cgr_config config;
  cgr_runtime *rt = NULL;
  if (cgr_config_init(&config) != CGR_OK)
    return 1;
  config.backend = CGR_BACKEND_HOST;
  cgr_status status = cgr_runtime_create(&config, &rt);
  if (status != CGR_OK) {
    fprintf(stderr, "consumer: cgr_runtime_create: %s: %s\n",
            cgr_status_name(status), cgr_last_error(NULL));
    return 1;
  }
  printf("consumer ok %s %s\n", cgr_version_string(), cgr_backend_name(rt));
  cgr_runtime_destroy(rt);
  return 0;
}
