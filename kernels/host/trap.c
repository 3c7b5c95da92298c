/* Host twin of kernels/trap.cu: nothing to do (see kernels/trap.h). */
#include "kernels/trap.h"

void cgr__host_trap(const void *args) { (void)args; }
