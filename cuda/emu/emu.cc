/* emu.cc: the CUDA emulator's runtime (cuda_runtime.h says what it is).
 *
 * Device memory: each allocation has pages of its own, filled with NaN
 * (all bits set: what nothing wrote is not zero, as on a GPU), ending at an
 * inaccessible guard page, and all of it is inaccessible (PROT_NONE) except
 * while a kernel, a copy or a cuBLAS call runs. So a kernel that writes past
 * an allocation's end, or host code that reads a device pointer, faults here
 * as it would on the GPU, instead of working by accident.
 *
 * Kernels: the blocks run one after another; a block's threads are fibers
 * (pp_emu_switch below; ucontext off x86-64) on the calling thread, run in thread order until each reaches a
 * barrier (__syncthreads, or a warp's shuffle) or returns. A barrier opens
 * when every thread of its group that has not returned has reached it. If no
 * thread can move on, the kernel is deadlocked: that is reported, and the
 * process exits with status 70, as for any failed CUDA call. A kernel whose
 * first block reaches no barrier runs its other blocks' threads as plain
 * calls, without fibers (PP_EMU_FIBERS=1: always with fibers). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include <cblas.h>
#include <functional>
#include <map>
#include <vector>

#include "cublas_v2.h"
#include "cuda_bf16.h"

#if defined(__x86_64__) && !defined(PP_EMU_UCONTEXT)
#define PP_EMU_SWITCH 1
#endif

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#define PP_EMU_ASAN 1
#endif

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "pp: CUDA emulator: ");
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(70);
}

/* ------------------------------------------------------------ streams
 *
 * Work runs when it is submitted, in the order submitted, except on the
 * stream that PP_EMU_DEFER names (N: the N-th stream created): its work
 * waits in a queue until something waits for it (an event recorded after
 * it, a synchronization, a synchronous call). Code that forgets to wait
 * for another stream then reads what was not yet written; deferring each
 * stream in turn tests each direction. */
struct pp_emu_stream {
    int deferred;
    std::vector<std::function<void()>> q;
    size_t done;          /* of q, run */
    pp_emu_stream *next;  /* every stream, in a list from a plain pointer: never freed, always reachable */
};
struct pp_emu_event {
    pp_emu_stream *s; /* recorded on a deferred stream: complete once s has run pos of its work */
    size_t pos;
    double ms;
    int recorded; /* its record has run (timing needs both events' records, as on the device) */
    pp_emu_event *prev, *next; /* the live events (reachable, as the streams: a program need not destroy them) */
};
static pp_emu_event *events;
static pp_emu_stream *streams;
static int n_streams;

/* Runs s's queued work up to pos. */
static void flush(pp_emu_stream *s, size_t pos)
{
    while (s->done < pos && s->done < s->q.size()) {
        std::function<void()> f = std::move(s->q[s->done]);
        s->done++;
        f();
    }
}

static void flush_all(void)
{
    for (pp_emu_stream *s = streams; s; s = s->next) flush(s, s->q.size());
}

int pp_emu_deferred(cudaStream_t s) { return s && s->deferred; }

void pp_emu_enqueue(cudaStream_t s, std::function<void()> f) { s->q.push_back(std::move(f)); }

/* ------------------------------------------------------------ memory */

struct region {
    char *base;   /* the mapping: pages, then one guard page */
    size_t pages; /* bytes of the accessible part */
    size_t bytes; /* what was asked */
    char *ptr;    /* what was handed out */
};

static std::map<uintptr_t, region> allocs; /* by the pointer handed out */
static size_t in_use, page;
static int opened;                            /* device memory accessible (nesting count) */
static const size_t total_mem = 80ull << 30; /* what cudaMemGetInfo reports */
static cudaError_t last_error;

static void protect_all(int prot)
{
    for (auto &a : allocs)
        if (mprotect(a.second.base, a.second.pages, prot) != 0) die("mprotect: %s", strerror(errno));
}

/* Device memory is accessible between open_dev() and close_dev(). */
static void open_dev(void)
{
    if (opened++ == 0) protect_all(PROT_READ | PROT_WRITE);
}
static void close_dev(void)
{
    if (--opened == 0) protect_all(PROT_NONE);
}

enum { CANARY = 0xA5 };

/* The bytes between an allocation's end and its 256-byte rounding must be
 * as cudaMalloc left them: a write there is past the end (the guard page
 * catches only what goes beyond the rounding). Device memory is open. */
static void check_tails(const char *what)
{
    for (auto &a : allocs) {
        const region &r = a.second;
        size_t body = (r.bytes + 255) / 256 * 256;
        for (size_t i = r.bytes; i < body; i++)
            if ((unsigned char)r.ptr[i] != CANARY)
                die("%s wrote past the end of a %zu-byte allocation (at byte %zu)", what, r.bytes, i);
    }
}

static const region *find(const void *p)
{
    auto it = allocs.upper_bound((uintptr_t)p);
    if (it == allocs.begin()) return NULL;
    --it;
    uintptr_t q = (uintptr_t)p;
    return q >= it->first && q < it->first + (it->second.bytes ? it->second.bytes : 1) ? &it->second : NULL;
}

static int is_dev(const void *p) { return find(p) != NULL; }

cudaError_t cudaMalloc(void **p, size_t bytes)
{
    *p = NULL;
    if (!page) page = (size_t)sysconf(_SC_PAGESIZE);
    if (bytes > total_mem - in_use) return last_error = cudaErrorMemoryAllocation;
    size_t body = (bytes + 255) / 256 * 256, pages = (body + page - 1) / page * page;
    if (!pages) pages = page;
    void *m = mmap(NULL, pages + page, opened ? PROT_READ | PROT_WRITE : PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) return last_error = cudaErrorMemoryAllocation;
    mprotect((char *)m + pages, page, PROT_NONE);
    char *ptr = (char *)m + pages - body; /* 256-aligned; ends at the guard page */
    /* a GPU's fresh memory holds whatever was there: here NaN (all bits set),
     * so a kernel reading what nothing wrote spreads NaN into the checks */
    if (!opened) mprotect(m, pages, PROT_READ | PROT_WRITE);
    memset(ptr, 0xff, bytes);
    memset(ptr + bytes, CANARY, body - bytes); /* the rounding up to 256 bytes: checked after kernels */
    if (!opened) mprotect(m, pages, PROT_NONE);
    allocs[(uintptr_t)ptr] = region{(char *)m, pages, bytes, ptr};
    in_use += bytes;
    *p = ptr;
    return cudaSuccess;
}

cudaError_t cudaFree(void *p)
{
    flush_all(); /* as the device synchronizes */
    if (!p) return cudaSuccess;
    auto it = allocs.find((uintptr_t)p);
    if (it == allocs.end()) return last_error = cudaErrorInvalidValue;
    munmap(it->second.base, it->second.pages + page);
    in_use -= it->second.bytes;
    allocs.erase(it);
    return cudaSuccess;
}

void pp_emu_check_arg(const void *p, const char *kernel, int index)
{
    if (p && !is_dev(p)) die("kernel %s: pointer argument %d is not device memory", kernel, index);
}

/* bytes at p must be all device memory (dev) or all host memory. */
static void check_span(const void *p, size_t bytes, int dev, const char *what)
{
    if (!bytes) return;
    const region *r = find(p);
    if (dev && (!r || (const char *)p + bytes > r->ptr + r->bytes))
        die("%s: %ld bytes that are not all in one device allocation", what, (long)bytes);
    if (!dev && r) die("%s: a host pointer expected, a device one given", what);
}

cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind, cudaStream_t s)
{
    int sd = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice;
    int dd = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice;
    if (kind == cudaMemcpyDefault) sd = is_dev(src), dd = is_dev(dst);
    check_span(src, bytes, sd, "cudaMemcpy source");
    check_span(dst, bytes, dd, "cudaMemcpy destination");
    if (!sd && s && s->deferred) { /* host memory is read now (pageable memory is staged at the call) */
        std::vector<char> copy((const char *)src, (const char *)src + bytes);
        pp_emu_submit(s, [dst, copy] {
            open_dev();
            memcpy(dst, copy.data(), copy.size());
            close_dev();
        });
        return cudaSuccess;
    }
    pp_emu_submit(s, [dst, src, bytes] {
        open_dev();
        memmove(dst, src, bytes);
        close_dev();
    });
    return cudaSuccess;
}

cudaError_t cudaMemcpy(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind)
{
    flush_all();
    return cudaMemcpyAsync(dst, src, bytes, kind, 0);
}

cudaError_t cudaMemsetAsync(void *p, int v, size_t bytes, cudaStream_t s)
{
    check_span(p, bytes, 1, "cudaMemset");
    pp_emu_submit(s, [p, v, bytes] {
        open_dev();
        memset(p, v, bytes);
        close_dev();
    });
    return cudaSuccess;
}

cudaError_t cudaMemset(void *p, int v, size_t bytes)
{
    flush_all();
    return cudaMemsetAsync(p, v, bytes, 0);
}

cudaError_t cudaMemGetInfo(size_t *free_bytes, size_t *total)
{
    *free_bytes = total_mem - in_use;
    *total = total_mem;
    return cudaSuccess;
}

/* ------------------------------------------------------------ device, streams, events */

cudaError_t cudaGetDeviceCount(int *n)
{
    *n = 1;
    return cudaSuccess;
}
cudaError_t cudaSetDevice(int d) { return d == 0 ? cudaSuccess : (last_error = cudaErrorInvalidDevice); }
cudaError_t cudaGetDevice(int *d)
{
    *d = 0;
    return cudaSuccess;
}
cudaError_t cudaGetDeviceProperties(cudaDeviceProp *p, int)
{
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "pp CUDA emulator (CPU)");
    p->major = 9, p->minor = 0, p->multiProcessorCount = 1, p->warpSize = 32, p->maxThreadsPerBlock = 1024;
    p->totalGlobalMem = total_mem, p->sharedMemPerBlock = 48 << 10;
    return cudaSuccess;
}
cudaError_t cudaGetLastError(void)
{
    cudaError_t e = last_error;
    last_error = cudaSuccess;
    return e;
}
cudaError_t cudaPeekAtLastError(void) { return last_error; }
const char *cudaGetErrorString(cudaError_t e)
{
    switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
    case cudaErrorInvalidResourceHandle: return "invalid resource handle";
    default: return "unspecified launch failure";
    }
}

cudaError_t cudaStreamCreate(cudaStream_t *s)
{
    const char *d = getenv("PP_EMU_DEFER");
    *s = new pp_emu_stream{0, {}, 0, streams};
    streams = *s;
    (*s)->deferred = d && atoi(d) == ++n_streams;
    return cudaSuccess;
}
cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned) { return cudaStreamCreate(s); }
cudaError_t cudaStreamDestroy(cudaStream_t s)
{
    if (s) flush(s, s->q.size()); /* (the stream object stays: its number is its identity) */
    return cudaSuccess;
}
cudaError_t cudaStreamSynchronize(cudaStream_t s)
{
    if (s) flush(s, s->q.size());
    else flush_all();
    return cudaSuccess;
}
cudaError_t cudaDeviceSynchronize(void)
{
    flush_all();
    return cudaSuccess;
}
static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}
cudaError_t cudaEventCreate(cudaEvent_t *e)
{
    *e = new pp_emu_event{NULL, 0, 0, 0, NULL, events};
    if (events) events->prev = *e;
    events = *e;
    return cudaSuccess;
}
cudaError_t cudaEventCreateWithFlags(cudaEvent_t *e, unsigned) { return cudaEventCreate(e); }
cudaError_t cudaEventDestroy(cudaEvent_t e)
{
    if (e->prev) e->prev->next = e->next;
    else events = e->next;
    if (e->next) e->next->prev = e->prev;
    delete e;
    return cudaSuccess;
}
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s)
{
    if (s && s->deferred) {
        pp_emu_submit(s, [e] { e->ms = now_ms(), e->recorded = 1; });
        e->s = s, e->pos = s->q.size();
    } else {
        e->s = NULL, e->ms = now_ms(), e->recorded = 1;
    }
    return cudaSuccess;
}
/* s waits for e: at once when s runs its work at once, else as s's next work */
cudaError_t cudaStreamWaitEvent(cudaStream_t s, cudaEvent_t e, unsigned)
{
    pp_emu_stream *es = e->s;
    size_t pos = e->pos;
    if (es) pp_emu_submit(s, [es, pos] { flush(es, pos); });
    return cudaSuccess;
}
cudaError_t cudaEventSynchronize(cudaEvent_t e)
{
    if (e->s) flush(e->s, e->pos);
    return cudaSuccess;
}
cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t a, cudaEvent_t b)
{
    if (!a->recorded || !b->recorded) return last_error = cudaErrorInvalidResourceHandle;
    *ms = (float)(b->ms - a->ms);
    return cudaSuccess;
}

/* ------------------------------------------------------------ kernels */

pp_emu_thread *pp_emu_self;
dim3 pp_emu_block, pp_emu_bdim, pp_emu_gdim;

enum { STACK = 256 << 10, MAXT = 1024 };

struct group {
    int live, arrived;
    unsigned gen;
};

struct fiber {
    char *stack;
    pp_emu_thread t;
    int done;
    group *wait; /* the barrier it waits at, and that barrier's generation */
    unsigned gen;
#ifdef PP_EMU_SWITCH
    void *sp; /* its saved stack pointer while it is not running */
#else
    ucontext_t uc;
#endif
};

static fiber fibers[MAXT];
static int n_stacks; /* fibers with a stack made (kept from launch to launch) */
static int n_lanes;  /* threads in a block of the running launch */
static group block_group, warp_group[MAXT / 32];
static fiber *cur;
static const pp_emu_kernel *kern;
static void fiber_main(void);

#ifdef PP_EMU_SWITCH
/* pp_emu_switch(&save, to): saves the callee-saved registers, the SSE and x87
 * control words on this stack and its pointer in save, then resumes the
 * stack `to` the same way. glibc's swapcontext does the same plus two system
 * calls (the signal mask), which made them 70% of the emulator's time. */
extern "C" void pp_emu_switch(void **save, void *to);
asm(".text\n"
    ".globl pp_emu_switch\n"
    ".hidden pp_emu_switch\n"
    ".type pp_emu_switch,@function\n"
    "pp_emu_switch:\n"
    "  pushq %rbp\n  pushq %rbx\n  pushq %r12\n  pushq %r13\n  pushq %r14\n  pushq %r15\n"
    "  subq $16, %rsp\n  stmxcsr (%rsp)\n  fnstcw 4(%rsp)\n"
    "  movq %rsp, (%rdi)\n  movq %rsi, %rsp\n"
    "  ldmxcsr (%rsp)\n  fldcw 4(%rsp)\n  addq $16, %rsp\n"
    "  popq %r15\n  popq %r14\n  popq %r13\n  popq %r12\n  popq %rbx\n  popq %rbp\n"
    "  ret\n"
    ".size pp_emu_switch, .-pp_emu_switch\n");

static void *sched_sp;

/* A fresh stack that pp_emu_switch enters at fiber_main, aligned as after a call. */
static void start_fiber(fiber *f)
{
#ifdef PP_EMU_ASAN /* the frames a fiber left last time are poisoned still (the top of the stack is enough) */
    __asan_unpoison_memory_region(f->stack + STACK - (64 << 10), 64 << 10);
#endif
    uintptr_t top = ((uintptr_t)f->stack + STACK) & ~(uintptr_t)15;
    uint64_t *sp = (uint64_t *)(top - 16); /* the return address slot: fiber_main */
    sp[0] = (uint64_t)(uintptr_t)fiber_main;
    sp -= 6; /* rbp rbx r12..r15 */
    memset(sp, 0, 6 * sizeof *sp);
    sp -= 2; /* mxcsr and the x87 control word, as this thread has them */
    unsigned mx;
    unsigned short cw;
    asm volatile("stmxcsr %0" : "=m"(mx));
    asm volatile("fnstcw %0" : "=m"(cw));
    memcpy(sp, &mx, 4);
    memcpy((char *)sp + 4, &cw, 2);
    f->sp = sp;
}
#define SWITCH_TO(f) pp_emu_switch(&sched_sp, (f)->sp)
#define SWITCH_BACK(f) pp_emu_switch(&(f)->sp, sched_sp)
#else
static ucontext_t sched;
static void start_fiber(fiber *f)
{
    getcontext(&f->uc);
    f->uc.uc_stack.ss_sp = f->stack;
    f->uc.uc_stack.ss_size = STACK;
    f->uc.uc_link = &sched;
    makecontext(&f->uc, fiber_main, 0);
}
#define SWITCH_TO(f) swapcontext(&sched, &(f)->uc)
#define SWITCH_BACK(f) swapcontext(&(f)->uc, &sched)
#endif

#ifdef PP_EMU_ASAN
static void *sched_fake;
static const void *sched_bottom;
static size_t sched_size;
#endif

/* The switches, told to AddressSanitizer when it watches the stacks. */
static void to_fiber(fiber *f)
{
    cur = f;
    pp_emu_self = &f->t;
#ifdef PP_EMU_ASAN
    __sanitizer_start_switch_fiber(&sched_fake, f->stack, STACK);
    SWITCH_TO(f);
    __sanitizer_finish_switch_fiber(sched_fake, NULL, NULL);
#else
    SWITCH_TO(f);
#endif
}

static void to_sched(fiber *f, int done)
{
#ifdef PP_EMU_ASAN
    void *fake = NULL;
    __sanitizer_start_switch_fiber(done ? NULL : &fake, sched_bottom, sched_size);
    SWITCH_BACK(f);
    __sanitizer_finish_switch_fiber(fake, NULL, NULL);
#else
    (void)done;
    SWITCH_BACK(f);
#endif
}

static void release(group *g)
{
    g->arrived = 0;
    g->gen++;
}

static unsigned long barriers; /* reached in this launch */
static int direct;              /* threads run as plain calls (the kernel's block 0 reached no barrier) */

static void barrier(group *g)
{
    fiber *f = cur;
    if (direct)
        die("kernel %s reached a barrier in block %u, but none in block 0, so it ran without fibers "
            "(PP_EMU_FIBERS=1 runs every block with them)", kern->name, pp_emu_block.x);
    barriers++;
    if (++g->arrived >= g->live) {
        release(g);
        return;
    }
    f->wait = g;
    f->gen = g->gen;
    to_sched(f, 0);
}

static void fiber_main(void)
{
#ifdef PP_EMU_ASAN
    __sanitizer_finish_switch_fiber(NULL, &sched_bottom, &sched_size);
#endif
    kern->run(kern->ctx);
    fiber *f = cur;
    f->done = 1;
    group *gs[2] = {&block_group, &warp_group[f->t.warp]};
    for (int i = 0; i < 2; i++) /* a returned thread no longer holds its barriers closed */
        if (--gs[i]->live > 0 && gs[i]->arrived > 0 && gs[i]->arrived >= gs[i]->live) release(gs[i]);
    to_sched(f, 1);
}

void __syncthreads(void) { barrier(&block_group); }
void __syncwarp(unsigned) { barrier(&warp_group[cur->t.warp]); }

static unsigned char turn[MAXT];
static unsigned rounds[MAXT]; /* exchanges each thread has entered in this block */
static void exchange_reset(void) { memset(turn, 0, sizeof turn), memset(rounds, 0, sizeof rounds); }

/* Lanes put their values in one of two buffers, taken in turn, and meet at
 * one warp barrier: a lane cannot come back to a buffer before every lane
 * has read it, since that takes it through the next exchange's barrier. */
uint64_t pp_emu_exchange(uint64_t v, unsigned mask, int mode, int arg, int width)
{
    static uint64_t buf[MAXT / 32][2][32];
    fiber *f = cur;
    int w = f->t.warp, lane = f->t.lane, lanes = n_lanes - w * 32 < 32 ? n_lanes - w * 32 : 32;
    if (width < 1 || width > 32 || (width & (width - 1)))
        die("kernel %s: a shuffle of width %d (a power of two up to 32, on the device)", kern->name, width);
    if (mask != 0xffffffffu) die("kernel %s: a shuffle with mask %#x (only the full warp's is emulated)", kern->name, mask);
    int base = lane & ~(width - 1), src = lane, tid = w * 32 + lane;
    uint64_t *b = buf[w][turn[tid]];
    turn[tid] ^= 1;
    rounds[tid]++;
    b[lane] = v;
    barrier(&warp_group[w]);
    /* PTX's rules: xor may reach a lower segment, not a higher one; up and
     * down stay in the segment; a lane out of range gives its own value */
    switch (mode) {
    case 0: src = lane ^ (arg & 31); break;
    case 1: src = base + (arg & (width - 1)); break;
    case 2: src = lane + arg; break;
    case 3: src = lane - arg; break;
    }
    if ((mode != 0 && src < base) || src >= base + width) src = lane;
    /* a lane that took part in this exchange has entered as many (or one more) */
    if (src >= lanes || rounds[w * 32 + src] < rounds[tid])
        die("kernel %s: a shuffle reads lane %d of warp %d, which %s (undefined on the device)", kern->name, src, w,
            src >= lanes ? "the block does not have" : "has returned");
    return b[src];
}

/* PP_EMU_ORDER=reverse runs the threads between two barriers last to first:
 * a kernel whose result depends on the order (a race the barriers do not
 * cover) then gives another result, which the self-test sees. */
static int env_is(const char *name, const char *value)
{
    const char *v = getenv(name);
    return v && !strcmp(v, value);
}

static int reverse_order(void)
{
    static int r = -1;
    if (r < 0) r = env_is("PP_EMU_ORDER", "reverse");
    return r;
}

/* PP_EMU_FIBERS=1: every block with fibers (see run_direct). */
static int fibers_always(void)
{
    static int r = -1;
    if (r < 0) r = env_is("PP_EMU_FIBERS", "1");
    return r;
}

/* A block whose threads reach no barrier: each thread a plain call, in turn. */
static void run_direct(int nt)
{
    int rev = reverse_order();
    for (int i = 0; i < nt; i++) {
        fiber *f = &fibers[rev ? nt - 1 - i : i];
        cur = f;
        pp_emu_self = &f->t;
        kern->run(kern->ctx);
    }
}

static void run_block(int nt)
{
    block_group = group{nt, 0, 0};
    exchange_reset();
    for (int w = 0; w * 32 < nt; w++) warp_group[w] = group{nt - w * 32 < 32 ? nt - w * 32 : 32, 0, 0};
    for (int t = 0; t < nt; t++) {
        fiber *f = &fibers[t];
        f->done = 0, f->wait = NULL;
        start_fiber(f);
    }
    int rev = reverse_order();
    for (;;) {
        int alive = 0, ran = 0;
        for (int i = 0; i < nt; i++) {
            fiber *f = &fibers[rev ? nt - 1 - i : i];
            if (f->done) continue;
            alive++;
            if (f->wait && f->wait->gen == f->gen) continue;
            f->wait = NULL;
            to_fiber(f);
            ran++;
        }
        if (!alive) return;
        if (!ran) die("kernel %s deadlocked: threads wait at a barrier others never reach (block %u)", kern->name,
                      pp_emu_block.x);
    }
}

int pp_emu_launch_ok(dim3 grid, dim3 block, size_t shared)
{
    unsigned long nt = (unsigned long)block.x * block.y * block.z;
    if (!nt || nt > MAXT || block.z > 64 || !grid.x || !grid.y || !grid.z || grid.x > 0x7fffffffu ||
        grid.y > 65535 || grid.z > 65535 || shared > (48u << 10)) {
        last_error = cudaErrorInvalidConfiguration;
        return 0;
    }
    return 1;
}

void pp_emu_run(const pp_emu_kernel &k, dim3 grid, dim3 block, size_t shared, cudaStream_t)
{
    unsigned long nt = (unsigned long)block.x * block.y * block.z;
    if (!pp_emu_launch_ok(grid, block, shared)) return;
    for (int t = n_stacks; t < (int)nt; t++) { /* stacks made once, kept */
        /* a guard page below each stack: a kernel overflowing its stack faults */
        size_t pg = (size_t)sysconf(_SC_PAGESIZE);
        void *s = mmap(NULL, STACK + pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (s == MAP_FAILED) die("no memory for %lu thread stacks", nt);
        mprotect(s, pg, PROT_NONE);
        fibers[t].stack = (char *)s + pg;
        n_stacks = t + 1;
    }
    n_lanes = (int)nt;
    for (int t = 0; t < (int)nt; t++) {
        pp_emu_thread *p = &fibers[t].t;
        p->tid = dim3(t % block.x, t / block.x % block.y, t / (block.x * block.y));
        p->warp = t / 32, p->lane = t % 32;
    }
    kern = &k;
    pp_emu_bdim = block, pp_emu_gdim = grid;
    barriers = 0, direct = 0;
    open_dev();
    for (unsigned z = 0; z < grid.z; z++)
        for (unsigned y = 0; y < grid.y; y++)
            for (unsigned x = 0; x < grid.x; x++) {
                pp_emu_block = dim3(x, y, z);
                if (direct) run_direct((int)nt);
                else run_block((int)nt);
                /* a kernel whose first block met no barrier (elementwise, grid-stride) runs
                 * the rest of its blocks without fibers: ten times faster */
                direct = !barriers && !fibers_always();
            }
    direct = 0;
    check_tails(k.name);
    close_dev();
}

/* ------------------------------------------------------------ cuBLAS */

struct pp_emu_blas {
    cudaStream_t s; /* its products run on this stream */
};
cublasStatus_t cublasCreate(cublasHandle_t *h)
{
    openblas_set_num_threads(1); /* the emulator is one thread; idle BLAS threads would spin beside it */
    *h = (cublasHandle_t) new pp_emu_blas{NULL};
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasDestroy(cublasHandle_t h)
{
    delete (pp_emu_blas *)h;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSetStream(cublasHandle_t h, cudaStream_t s)
{
    ((pp_emu_blas *)h)->s = s;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSetMathMode(cublasHandle_t, cublasMath_t) { return CUBLAS_STATUS_SUCCESS; }
const char *cublasGetStatusString(cublasStatus_t s)
{
    switch (s) {
    case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
    default: return "CUBLAS_STATUS_INTERNAL_ERROR";
    }
}

static size_t tsize(cudaDataType t) { return t == CUDA_R_32F ? 4 : 2; }

static float get(const void *p, cudaDataType t, size_t i)
{
    switch (t) {
    case CUDA_R_32F: return ((const float *)p)[i];
    case CUDA_R_16F: return __half2float(((const __half *)p)[i]);
    default: return __bfloat162float(((const __nv_bfloat16 *)p)[i]);
    }
}

static void put(void *p, cudaDataType t, size_t i, float v)
{
    switch (t) {
    case CUDA_R_32F: ((float *)p)[i] = v; break;
    case CUDA_R_16F: ((__half *)p)[i] = __float2half(v); break;
    default: ((__nv_bfloat16 *)p)[i] = __float2bfloat16(v); break;
    }
}

/* The elements an operand of rows × cols (as stored, column-major with
 * leading dimension ld) spans, widened to fp32 (a fresh host array). */
static float *widen(const void *p, cudaDataType t, int rows, int cols, int ld, size_t *n)
{
    *n = cols ? (size_t)ld * (cols - 1) + rows : 0;
    check_span(p, *n * tsize(t), 1, "cuBLAS operand");
    float *f = (float *)malloc((*n ? *n : 1) * sizeof *f);
    if (!f) die("out of host memory");
    for (size_t i = 0; i < *n; i++) f[i] = get(p, t, i);
    return f;
}

static void gemm_run(cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, float alpha, const void *A,
                     cudaDataType at, int lda, const void *B, cudaDataType bt, int ldb, float beta, void *C,
                     cudaDataType ct, int ldc);

/* The arguments checked now, the product on h's stream (alpha and beta
 * taken now, as cuBLAS reads host scalars at the call). */
static cublasStatus_t gemm(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                           float alpha, const void *A, cudaDataType at, int lda, const void *B, cudaDataType bt, int ldb,
                           float beta, void *C, cudaDataType ct, int ldc)
{
    if (m < 0 || n < 0 || k < 0 || lda < (ta == CUBLAS_OP_N ? m : k) || lda < 1 || ldb < (tb == CUBLAS_OP_N ? k : n) ||
        ldb < 1 || ldc < m || ldc < 1)
        return CUBLAS_STATUS_INVALID_VALUE;
    int known = (at == CUDA_R_32F || at == CUDA_R_16F || at == CUDA_R_16BF) &&
                (ct == CUDA_R_32F || ct == CUDA_R_16F || ct == CUDA_R_16BF);
    if (!known || at != bt) return CUBLAS_STATUS_NOT_SUPPORTED; /* as cuBLAS for mixed input types */
    if (!m || !n) return CUBLAS_STATUS_SUCCESS;
    pp_emu_submit(h->s, [=] { gemm_run(ta, tb, m, n, k, alpha, A, at, lda, B, bt, ldb, beta, C, ct, ldc); });
    return CUBLAS_STATUS_SUCCESS;
}

static void gemm_run(cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, float alpha, const void *A,
                     cudaDataType at, int lda, const void *B, cudaDataType bt, int ldb, float beta, void *C,
                     cudaDataType ct, int ldc)
{
    open_dev();
    size_t na, nb, nc;
    float *a = widen(A, at, ta == CUBLAS_OP_N ? m : k, ta == CUBLAS_OP_N ? k : m, lda, &na);
    float *b = widen(B, bt, tb == CUBLAS_OP_N ? k : n, tb == CUBLAS_OP_N ? n : k, ldb, &nb);
    float *c = widen(C, ct, m, n, ldc, &nc);
    if (beta == 0.0f) /* C is not read (it may hold NaN) */
        for (int j = 0; j < n; j++) memset(c + (size_t)j * ldc, 0, (size_t)m * sizeof *c);
    if (k > 0)
        cblas_sgemm(CblasColMajor, ta == CUBLAS_OP_N ? CblasNoTrans : CblasTrans,
                    tb == CUBLAS_OP_N ? CblasNoTrans : CblasTrans, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    else
        for (int j = 0; j < n; j++)
            for (int i = 0; i < m; i++) c[(size_t)j * ldc + i] *= beta;
    for (int j = 0; j < n; j++)
        for (int i = 0; i < m; i++) put(C, ct, (size_t)j * ldc + i, c[(size_t)j * ldc + i]);
    free(a), free(b), free(c);
    check_tails("a cuBLAS product");
    close_dev();
}

cublasStatus_t cublasSgemm(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                           const float *alpha, const float *A, int lda, const float *B, int ldb, const float *beta,
                           float *C, int ldc)
{
    return gemm(h, ta, tb, m, n, k, *alpha, A, CUDA_R_32F, lda, B, CUDA_R_32F, ldb, *beta, C, CUDA_R_32F, ldc);
}

cublasStatus_t cublasGemmEx(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                            const void *alpha, const void *A, cudaDataType at, int lda, const void *B, cudaDataType bt,
                            int ldb, const void *beta, void *C, cudaDataType ct, int ldc, cublasComputeType_t compute,
                            cublasGemmAlgo_t)
{
    if (compute != CUBLAS_COMPUTE_32F && compute != CUBLAS_COMPUTE_32F_FAST_16BF &&
        compute != CUBLAS_COMPUTE_32F_FAST_16F)
        return CUBLAS_STATUS_NOT_SUPPORTED;
    return gemm(h, ta, tb, m, n, k, *(const float *)alpha, A, at, lda, B, bt, ldb, *(const float *)beta, C, ct, ldc);
}

cublasStatus_t cublasGemmStridedBatchedEx(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n,
                                          int k, const void *alpha, const void *A, cudaDataType at, int lda,
                                          long long sa, const void *B, cudaDataType bt, int ldb, long long sb,
                                          const void *beta, void *C, cudaDataType ct, int ldc, long long sc, int batch,
                                          cublasComputeType_t compute, cublasGemmAlgo_t algo)
{
    for (int i = 0; i < batch; i++) {
        cublasStatus_t s = cublasGemmEx(h, ta, tb, m, n, k, alpha, (const char *)A + i * sa * (long long)tsize(at), at,
                                        lda, (const char *)B + i * sb * (long long)tsize(bt), bt, ldb, beta,
                                        (char *)C + i * sc * (long long)tsize(ct), ct, ldc, compute, algo);
        if (s != CUBLAS_STATUS_SUCCESS) return s;
    }
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSgemmStridedBatched(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n,
                                         int k, const float *alpha, const float *A, int lda, long long sa,
                                         const float *B, int ldb, long long sb, const float *beta, float *C, int ldc,
                                         long long sc, int batch)
{
    return cublasGemmStridedBatchedEx(h, ta, tb, m, n, k, alpha, A, CUDA_R_32F, lda, sa, B, CUDA_R_32F, ldb, sb, beta,
                                      C, CUDA_R_32F, ldc, sc, batch, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
}
