/* probe.h: C entry point of the CUDA probe. */
#ifndef PP_CUDA_PROBE_H
#define PP_CUDA_PROBE_H

#ifdef __cplusplus
extern "C" {
#endif

/* Counts the devices into *devices and runs one kernel on device 0.
 * Returns 1 when the kernel's output is right, 0 with no device, -1 on a
 * CUDA error. */
int pp_cuda_probe(int *devices);

#ifdef __cplusplus
}
#endif

#endif
