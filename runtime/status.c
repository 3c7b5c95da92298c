#include "cgr/cgr.h"

const char *cgr_version_string(void) { return CGR_VERSION_STRING; }

unsigned cgr_version_number(void) { return CGR_VERSION_NUMBER; }

const char *cgr_status_name(cgr_status status) {
  switch (status) {
#define CGR_STATUS_NAME_(name, value, message)                                 \
  case CGR_##name:                                                             \
    return "CGR_" #name;
    CGR_STATUS_LIST(CGR_STATUS_NAME_)
#undef CGR_STATUS_NAME_
  }
  return "CGR_E_UNKNOWN";
}

const char *cgr_status_str(cgr_status status) {
  switch (status) {
#define CGR_STATUS_STR_(name, value, message)                                  \
  case CGR_##name:                                                             \
    return message;
    CGR_STATUS_LIST(CGR_STATUS_STR_)
#undef CGR_STATUS_STR_
  }
  return "unknown status";
}
