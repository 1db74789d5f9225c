#include <dlfcn.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend.h"
#include "cli.h"
#include "quant.h"
#include "../cuda/backend_cuda.h"

/* Where libppcuda.so may be: $PP_CUDA_LIB, then beside the tool's binary
 * (bin/../build/lib in the source tree, bin/../lib/pp when installed,
 * build/gpu/../lib for the GPU self-test). */
static void *open_cuda_lib(char *why, size_t n)
{
    const char *env = getenv("PP_CUDA_LIB");
    char exe[PATH_MAX], paths[5][PATH_MAX + 32];
    int k = 0;
    if (env && *env) snprintf(paths[k++], sizeof paths[0], "%s", env);
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (len > 0) {
        exe[len] = 0;
        char *dir = dirname(exe);
        snprintf(paths[k++], sizeof paths[0], "%s/../build/lib/libppcuda.so", dir);
        snprintf(paths[k++], sizeof paths[0], "%s/../lib/pp/libppcuda.so", dir);
        snprintf(paths[k++], sizeof paths[0], "%s/../lib/libppcuda.so", dir);
        snprintf(paths[k++], sizeof paths[0], "%s/libppcuda.so", dir);
    }
    snprintf(why, n, "libppcuda.so not found (built with nvcc; PP_CUDA_LIB names it)");
    for (int i = 0; i < k; i++) {
        if (access(paths[i], R_OK) != 0) continue;
        void *h = dlopen(paths[i], RTLD_NOW | RTLD_LOCAL);
        if (h) return h;
        const char *e = dlerror();
        snprintf(why, n, "%.512s: %.256s", paths[i], e ? e : "cannot be loaded");
    }
    return NULL;
}

const char *pp_precision_name(pp_precision p)
{
    return p == PP_PREC_FP32 ? "fp32" : p == PP_PREC_BF16 ? "bf16" : p == PP_PREC_FP16 ? "fp16" : "auto";
}

pp_status pp_backend_open(pp_backend **out, const char *device, int threads)
{
    *out = NULL;
    if (!device || !strcmp(device, "cpu")) return pp_backend_cpu(out, threads);
    int want_cuda = !strncmp(device, "cuda", 4), index = 0;
    if (!want_cuda && strcmp(device, "auto"))
        return pp_fail(PP_E_USAGE, "unknown device \"%s\" (cpu, cuda, cuda:N or auto)", device);
    if (want_cuda && device[4]) {
        char *end;
        long v = device[4] == ':' ? strtol(device + 5, &end, 10) : -1;
        if (device[4] != ':' || !device[5] || *end || v < 0 || v > 64)
            return pp_fail(PP_E_USAGE, "unknown device \"%s\" (cpu, cuda, cuda:N or auto)", device);
        index = (int)v;
    }
    /* "auto" on a machine without the NVIDIA driver: the CPU, without loading CUDA */
    if (!want_cuda && access("/proc/driver/nvidia/version", R_OK) != 0 && access("/dev/nvidiactl", F_OK) != 0)
        return pp_backend_cpu(out, threads);
    char why[PATH_MAX + 256];
    void *h = open_cuda_lib(why, sizeof why);
    pp_cuda_create_fn create = h ? (pp_cuda_create_fn)(uintptr_t)dlsym(h, PP_CUDA_ENTRY) : NULL;
    if (h && !create) snprintf(why, sizeof why, "libppcuda.so has no %s", PP_CUDA_ENTRY);
    if (create) {
        pp_cuda_host host = {pp_fail, pp_quant_code4(PP_Q_NF4), pp_quant_code4(PP_Q_FP4), pp_quant_dynamic_map(),
                             pp_verbosity >= 2};
        pp_status s = create(out, index, &host);
        if (s == PP_OK) return PP_OK; /* the library stays loaded for the process */
        if (want_cuda) return s;
        pp_cli_say(2, "no CUDA device (%s); using the CPU", pp_errmsg());
    } else if (want_cuda) {
        return pp_fail(PP_E_NOINPUT, "the CUDA backend is not available: %s", why);
    } else {
        pp_cli_say(2, "CUDA backend not available (%s); using the CPU", why);
    }
    if (h) dlclose(h);
    return pp_backend_cpu(out, threads);
}
