/*
 * The host communicator (host_comm.h): two generation-counted barriers per
 * collective, the result computed once by the last rank to arrive. Across
 * processes the same object lives in a shared mapping (shm_open), its lock
 * and condition process-shared and robust, and every rank's send is staged
 * in the mapping before the last rank computes: no pointer of one process
 * is read by another.
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime, pthread_condattr_setclock */
#include "runtime/host/host_comm.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "runtime/alloc.h"
#include "runtime/host/host_reduce.h"

struct cgr__host_comm {
  pthread_mutex_t lock;
  /* Broadcast whenever the state below moves: a barrier opened, the
   * communicator aborted, a rank left. */
  pthread_cond_t changed;
  int ranks;
  uint32_t timeout_ms;
  /* The collective under way, numbered from 0; it advances when the last
   * rank departs, so a rank waiting to depart waits for it to change. */
  uint64_t sequence;
  unsigned arrived_mask;
  unsigned departed_mask;
  int computed; /* the result of `sequence` is ready to copy out */
  cgr__collective calls[CGR_GROUP_MAX_RANKS];
  /* The result, written by the last rank to arrive, read by all. Grown by
   * realloc on a worker thread: not cgr__malloc, whose fault injection
   * would count worker-thread sites in no stable order. */
  unsigned char *result;
  size_t result_capacity;
  int inside; /* ranks inside cgr__host_comm_run; destroy waits for 0 */
  int aborted;
  char reason[CGR__ERROR_MESSAGE_SIZE];
  /* Across processes (cgr__host_comm_join): the mapping's size, the bytes
   * of each rank's staging (the result follows the ranks' staging), the
   * ranks that joined, and the mark rank 0 sets once the rest is ready. */
  int shared;
  size_t mapped_bytes, capacity;
  unsigned joined_mask;
  _Atomic uint64_t ready;
};

/* The mark of a shared communicator ready to use ("cgrshm01"). */
#define SHARED_READY UINT64_C(0x63677273686d3031)

/* Where a shared communicator's staging starts: past the object. */
static size_t shared_header(void) {
  return (sizeof(cgr__host_comm) + 63) / 64 * 64;
}

/* Rank r's staged send (shared communicators). */
static unsigned char *staging(cgr__host_comm *comm, int rank) {
  return (unsigned char *)comm + shared_header() +
         (size_t)rank * comm->capacity;
}

/* The result every rank copies out: in the mapping when shared. */
static unsigned char *result_buffer(cgr__host_comm *comm) {
  return comm->shared ? staging(comm, comm->ranks) : comm->result;
}

static void abort_locked(cgr__host_comm *comm, const char *why);

/* Takes the lock; a process that died holding it (a robust mutex) leaves
 * the communicator aborted, its state no longer to be trusted. */
static void lock_comm(cgr__host_comm *comm) {
  if (pthread_mutex_lock(&comm->lock) == EOWNERDEAD) {
    pthread_mutex_consistent(&comm->lock);
    abort_locked(comm, "a process of the group died while it held the "
                       "communicator's lock");
  }
}

/* Tells the waiters that the state moved. Across processes nobody waits
 * on the condition (wait_changed), so there is nobody to tell. */
static void signal_changed(cgr__host_comm *comm) {
  if (!comm->shared)
    pthread_cond_broadcast(&comm->changed);
}

/* `ms` from now on CLOCK_MONOTONIC. */
static struct timespec deadline_after(uint32_t ms) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  t.tv_sec += (time_t)(ms / 1000);
  t.tv_nsec += (long)(ms % 1000) * 1000000L;
  if (t.tv_nsec >= 1000000000L) {
    t.tv_sec += 1;
    t.tv_nsec -= 1000000000L;
  }
  return t;
}

static int past(const struct timespec *deadline) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec > deadline->tv_sec ||
         (t.tv_sec == deadline->tv_sec && t.tv_nsec >= deadline->tv_nsec);
}

/*
 * Waits, holding the lock on entry and on return, until the state may
 * have moved or `deadline` (CLOCK_MONOTONIC) passed: ETIMEDOUT then, 0
 * otherwise (callers loop). In one process on the condition. Across
 * processes by sleeping with the lock released, *pause_us growing from 20
 * us to 1 ms: a process killed while it waits on a process-shared
 * condition variable can leave every later broadcast blocked (glibc keeps
 * a count of its waiters), so a shared communicator waits on none.
 */
static int wait_changed(cgr__host_comm *comm, const struct timespec *deadline,
                        long *pause_us) {
  if (!comm->shared)
    return pthread_cond_timedwait(&comm->changed, &comm->lock, deadline);
  if (past(deadline))
    return ETIMEDOUT;
  pthread_mutex_unlock(&comm->lock);
  struct timespec pause = {0, *pause_us * 1000};
  nanosleep(&pause, NULL);
  if (*pause_us < 1000)
    *pause_us *= 2;
  lock_comm(comm);
  return 0;
}

/* ---- names for messages ------------------------------------------------ */

static const char *dtype_name(cgr_dtype dtype) {
  static const char *const names[] = {"int8",    "uint8",    "int32",
                                      "uint32",  "int64",    "uint64",
                                      "float16", "bfloat16", "float32",
                                      "float64"};
  return (unsigned)dtype < sizeof names / sizeof names[0] ? names[dtype] : "?";
}

static const char *op_name(cgr_reduce_op op) {
  static const char *const names[] = {"sum", "prod", "max", "min"};
  return (unsigned)op < sizeof names / sizeof names[0] ? names[op] : "?";
}

/* "all-reduce (sum) of 16 float32", ... */
static void describe(const cgr__collective *c, char *out, size_t size) {
  switch (c->kind) {
  case CGR__COLL_ALL_REDUCE:
    snprintf(out, size, "all-reduce (%s) of %zu %s", op_name(c->op), c->count,
             dtype_name(c->dtype));
    break;
  case CGR__COLL_ALL_GATHER:
    snprintf(out, size, "all-gather of %zu %s per rank", c->count,
             dtype_name(c->dtype));
    break;
  default:
    snprintf(out, size, "broadcast from rank %d of %zu %s", c->root, c->count,
             dtype_name(c->dtype));
    break;
  }
}

/* "rank 2" or "ranks 1, 3" for the ranks not in mask. */
static void ranks_missing(unsigned mask, int ranks, char *out, size_t size) {
  int missing = 0;
  for (int r = 0; r < ranks; ++r)
    missing += !(mask & (1u << r));
  size_t used =
      (size_t)snprintf(out, size, "%s", missing == 1 ? "rank" : "ranks");
  const char *separator = " ";
  for (int r = 0; r < ranks && used < size; ++r) {
    if (mask & (1u << r))
      continue;
    used += (size_t)snprintf(out + used, size - used, "%s%d", separator, r);
    separator = ", ";
  }
}

/* ---- lifetime ---------------------------------------------------------- */

cgr_status cgr__host_comm_create(int ranks, uint32_t timeout_ms,
                                 cgr__error *err, cgr__host_comm **out) {
  *out = NULL;
  if (ranks < 1 || ranks > CGR_GROUP_MAX_RANKS)
    return cgr__fail(err, CGR_E_INVALID_ARGUMENT, __func__, "%d ranks: 1 to %d",
                     ranks, CGR_GROUP_MAX_RANKS);
  cgr__host_comm *comm = cgr__calloc(1, sizeof *comm);
  if (comm == NULL)
    return cgr__fail(err, CGR_E_OUT_OF_MEMORY, __func__,
                     "allocating the host communicator failed");
  pthread_condattr_t attr;
  int made_lock = pthread_mutex_init(&comm->lock, NULL) == 0;
  int made_cond = 0;
  if (made_lock && pthread_condattr_init(&attr) == 0) {
    made_cond = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC) == 0 &&
                pthread_cond_init(&comm->changed, &attr) == 0;
    pthread_condattr_destroy(&attr);
  }
  if (!made_cond) {
    if (made_lock)
      pthread_mutex_destroy(&comm->lock);
    cgr__free(comm);
    return cgr__fail(err, CGR_E_SYSTEM, __func__,
                     "initializing the host communicator's lock failed");
  }
  comm->ranks = ranks;
  comm->timeout_ms = timeout_ms ? timeout_ms : 1;
  *out = comm;
  return CGR_OK;
}

void cgr__host_comm_destroy(cgr__host_comm *comm) {
  if (comm == NULL)
    return;
  /* Shared: this process's rank is out (its stream is drained); the other
   * processes still use the lock, so only the mapping goes. */
  if (comm->shared) {
    munmap(comm, comm->mapped_bytes);
    return;
  }
  lock_comm(comm);
  while (comm->inside > 0)
    pthread_cond_wait(&comm->changed, &comm->lock);
  pthread_mutex_unlock(&comm->lock);
  pthread_cond_destroy(&comm->changed);
  pthread_mutex_destroy(&comm->lock);
  free(comm->result);
  cgr__free(comm);
}

/* ---- across processes --------------------------------------------------- */

static void sleep_ms(long ms) {
  struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&t, NULL);
}

/* Rank 0: makes the object in a fresh mapping of `fd`. */
static cgr_status shared_init(cgr__host_comm *comm, int ranks,
                              uint32_t timeout_ms, size_t bytes,
                              size_t capacity, cgr__error *err) {
  pthread_mutexattr_t lock_attr;
  pthread_condattr_t cond_attr;
  int ok = pthread_mutexattr_init(&lock_attr) == 0;
  if (ok) {
    ok =
        pthread_mutexattr_setpshared(&lock_attr, PTHREAD_PROCESS_SHARED) == 0 &&
        pthread_mutexattr_setrobust(&lock_attr, PTHREAD_MUTEX_ROBUST) == 0 &&
        pthread_mutex_init(&comm->lock, &lock_attr) == 0;
    pthread_mutexattr_destroy(&lock_attr);
  }
  if (ok && pthread_condattr_init(&cond_attr) == 0) {
    ok = pthread_condattr_setpshared(&cond_attr, PTHREAD_PROCESS_SHARED) == 0 &&
         pthread_condattr_setclock(&cond_attr, CLOCK_MONOTONIC) == 0 &&
         pthread_cond_init(&comm->changed, &cond_attr) == 0;
    pthread_condattr_destroy(&cond_attr);
  } else {
    ok = 0;
  }
  if (!ok)
    return cgr__fail(err, CGR_E_SYSTEM, "cgr__host_comm_join",
                     "initializing the shared communicator's "
                     "process-shared lock failed");
  comm->ranks = ranks;
  comm->timeout_ms = timeout_ms ? timeout_ms : 1;
  comm->shared = 1;
  comm->mapped_bytes = bytes;
  comm->capacity = capacity;
  atomic_store_explicit(&comm->ready, SHARED_READY, memory_order_release);
  return CGR_OK;
}

/* Ranks past 0: opens rank 0's mapping once it is there and ready. */
static cgr_status shared_open(const char *name, size_t bytes,
                              const struct timespec *deadline, cgr__error *err,
                              cgr__host_comm **out) {
  for (;;) {
    int fd = shm_open(name, O_RDWR, 0);
    struct stat st;
    if (fd >= 0 && fstat(fd, &st) == 0 && (size_t)st.st_size == bytes) {
      void *map = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
      close(fd);
      if (map == MAP_FAILED)
        return cgr__fail(err, CGR_E_SYSTEM, "cgr__host_comm_join",
                         "mapping the group's shared memory %s failed: %s",
                         name, strerror(errno));
      cgr__host_comm *comm = map;
      while (atomic_load_explicit(&comm->ready, memory_order_acquire) !=
             SHARED_READY) {
        if (past(deadline)) {
          munmap(map, bytes);
          return cgr__fail(err, CGR_E_TIMEOUT, "cgr__host_comm_join",
                           "rank 0 made %s but never finished it", name);
        }
        sleep_ms(1);
      }
      *out = comm;
      return CGR_OK;
    }
    int why = fd >= 0 ? 0 : errno;
    if (fd >= 0) {
      /* Another size: rank 0 is still sizing it, or counts other ranks. */
      if (fstat(fd, &st) == 0 && st.st_size != 0 &&
          (size_t)st.st_size != bytes) {
        close(fd);
        return cgr__fail(err, CGR_E_INVALID_ARGUMENT, "cgr__host_comm_join",
                         "the group %s was made for another rank count than "
                         "this process's (its memory is %lld bytes, %zu "
                         "expected)",
                         name, (long long)st.st_size, bytes);
      }
      close(fd);
    } else if (why != ENOENT) {
      return cgr__fail(err, CGR_E_SYSTEM, "cgr__host_comm_join",
                       "opening the group's shared memory %s failed: %s", name,
                       strerror(why));
    }
    if (past(deadline))
      return cgr__fail(err, CGR_E_TIMEOUT, "cgr__host_comm_join",
                       "the group %s was not there in time: rank 0 had not "
                       "made it, or had already given up waiting for the "
                       "others",
                       name);
    sleep_ms(1);
  }
}

cgr_status cgr__host_comm_join(const char *name, int ranks, int rank,
                               uint32_t timeout_ms, cgr__error *err,
                               cgr__host_comm **out) {
  *out = NULL;
  if (ranks < 1 || ranks > CGR_GROUP_MAX_RANKS || rank < 0 || rank >= ranks)
    return cgr__fail(err, CGR_E_INVALID_ARGUMENT, __func__,
                     "rank %d of %d ranks: 1 to %d ranks", rank, ranks,
                     CGR_GROUP_MAX_RANKS);
  size_t capacity = CGR__HOST_COMM_SHARED_BYTES;
  size_t bytes = shared_header() + 2 * (size_t)ranks * capacity;
  struct timespec deadline = deadline_after(timeout_ms ? timeout_ms : 1);
  cgr__host_comm *comm = NULL;
  if (rank == 0) {
    int fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0600);
    if (fd < 0)
      return cgr__fail(err, CGR_E_SYSTEM, __func__,
                       "making the group's shared memory %s failed: %s%s", name,
                       strerror(errno),
                       errno == EEXIST ? " (an id is for one group: make a "
                                         "new one)"
                                       : "");
    /* Reserved, not sparse: a /dev/shm too small (a container's 64 MiB)
     * fails here with a message, not later with SIGBUS. */
    void *map = MAP_FAILED;
    int why = posix_fallocate(fd, 0, (off_t)bytes);
    if (why == 0) {
      map = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
      why = errno;
    }
    close(fd);
    if (map == MAP_FAILED) {
      shm_unlink(name);
      return cgr__fail(err, CGR_E_SYSTEM, __func__,
                       "sizing the group's shared memory %s (%zu bytes, "
                       "in /dev/shm) failed: %s",
                       name, bytes, strerror(why));
    }
    comm = map;
    cgr_status status =
        shared_init(comm, ranks, timeout_ms, bytes, capacity, err);
    if (status != CGR_OK) {
      munmap(map, bytes);
      shm_unlink(name);
      return status;
    }
  } else {
    CGR__CHECK(shared_open(name, bytes, &deadline, err, &comm));
    if (comm->ranks != ranks) {
      munmap(comm, bytes);
      return cgr__fail(err, CGR_E_INVALID_ARGUMENT, __func__,
                       "the group %s has %d ranks, this process says %d", name,
                       comm->ranks, ranks);
    }
  }
  /* Every rank waits for the others to join; rank 0 then removes the name
   * (the mapping stays), so that no process's death leaves it behind. Once
   * every rank came the join has succeeded, even where a faster rank has
   * since aborted the communicator: its next collective reports that. */
  lock_comm(comm);
  comm->joined_mask |= 1u << rank;
  signal_changed(comm);
  unsigned all = (1u << ranks) - 1;
  int rc = 0;
  long pause_us = 20;
  while (comm->joined_mask != all && !comm->aborted && rc != ETIMEDOUT)
    rc = wait_changed(comm, &deadline, &pause_us);
  unsigned joined = comm->joined_mask;
  int aborted = joined != all && comm->aborted;
  if (joined != all && !aborted) {
    char missing[64], why[CGR__ERROR_MESSAGE_SIZE];
    ranks_missing(joined, ranks, missing, sizeof missing);
    snprintf(why, sizeof why, "%s did not join the group %s within %u ms",
             missing, name, comm->timeout_ms);
    abort_locked(comm, why);
  }
  char reason[CGR__ERROR_MESSAGE_SIZE];
  snprintf(reason, sizeof reason, "%s", comm->reason);
  pthread_mutex_unlock(&comm->lock);
  if (rank == 0)
    shm_unlink(name);
  if (joined != all || aborted) {
    munmap(comm, bytes);
    return cgr__fail(err, CGR_E_TIMEOUT, __func__, "%s", reason);
  }
  *out = comm;
  return CGR_OK;
}

/* ---- failure ----------------------------------------------------------- */

static void abort_locked(cgr__host_comm *comm, const char *why) {
  if (!comm->aborted) {
    comm->aborted = 1;
    snprintf(comm->reason, sizeof comm->reason, "%s", why);
  }
  signal_changed(comm);
}

void cgr__host_comm_abort(cgr__host_comm *comm, const char *why) {
  if (comm == NULL)
    return;
  lock_comm(comm);
  abort_locked(comm, why ? why : "the communicator was aborted");
  pthread_mutex_unlock(&comm->lock);
}

cgr_status cgr__host_comm_check(cgr__host_comm *comm, cgr__error *err) {
  char reason[CGR__ERROR_MESSAGE_SIZE];
  lock_comm(comm);
  int aborted = comm->aborted;
  if (aborted)
    memcpy(reason, comm->reason, sizeof reason);
  pthread_mutex_unlock(&comm->lock);
  if (!aborted)
    return CGR_OK;
  return cgr__fail(err, CGR_E_TIMEOUT, "collective", "%s", reason);
}

uint64_t cgr__host_comm_completed(cgr__host_comm *comm) {
  lock_comm(comm);
  uint64_t completed = comm->sequence;
  pthread_mutex_unlock(&comm->lock);
  return completed;
}

/* ---- one collective ---------------------------------------------------- */

/* Bytes each rank copies out into its recv. */
static size_t result_bytes(const cgr__host_comm *comm,
                           const cgr__collective *c) {
  size_t bytes = c->count * cgr__dtype_size(c->dtype);
  return c->kind == CGR__COLL_ALL_GATHER ? bytes * (size_t)comm->ranks : bytes;
}

/* 1 when rank r's call is the same collective as rank 0's. */
static int same_call(const cgr__collective *a, const cgr__collective *b) {
  return a->kind == b->kind && a->count == b->count && a->dtype == b->dtype &&
         (a->kind != CGR__COLL_ALL_REDUCE || a->op == b->op) &&
         (a->kind != CGR__COLL_BROADCAST || a->root == b->root);
}

/* The last rank to arrive: checks the ranks agree, then computes the
 * result; aborts the communicator when it cannot. Holds the lock. */
static void compute_locked(cgr__host_comm *comm) {
  char what[128], why[CGR__ERROR_MESSAGE_SIZE];
  const cgr__collective *first = &comm->calls[0];
  for (int r = 1; r < comm->ranks; ++r) {
    if (same_call(first, &comm->calls[r]))
      continue;
    char other[128];
    describe(first, what, sizeof what);
    describe(&comm->calls[r], other, sizeof other);
    snprintf(why, sizeof why,
             "collective #%llu: rank %d called %s, but rank 0 called %s "
             "(every rank must call the same collectives in the same order)",
             (unsigned long long)comm->sequence, r, other, what);
    abort_locked(comm, why);
    return;
  }
  size_t bytes = result_bytes(comm, first);
  if (!comm->shared && bytes > comm->result_capacity) {
    unsigned char *grown = realloc(comm->result, bytes);
    if (grown == NULL) {
      describe(first, what, sizeof what);
      snprintf(why, sizeof why,
               "collective #%llu (%s): out of host memory for its %zu-byte "
               "result",
               (unsigned long long)comm->sequence, what, bytes);
      abort_locked(comm, why);
      return;
    }
    comm->result = grown;
    comm->result_capacity = bytes;
  }
  const void *sends[CGR_GROUP_MAX_RANKS];
  for (int r = 0; r < comm->ranks; ++r)
    sends[r] = comm->shared ? staging(comm, r) : comm->calls[r].send;
  size_t per_rank = first->count * cgr__dtype_size(first->dtype);
  unsigned char *result = result_buffer(comm);
  switch (first->kind) {
  case CGR__COLL_ALL_REDUCE:
    cgr__host_reduce(result, sends, comm->ranks, first->count, first->dtype,
                     first->op);
    break;
  case CGR__COLL_ALL_GATHER:
    for (int r = 0; r < comm->ranks; ++r)
      memcpy(result + (size_t)r * per_rank, sends[r], per_rank);
    break;
  default:
    memcpy(result, sends[first->root], per_rank);
    break;
  }
  comm->computed = 1;
  signal_changed(comm);
}

/* Waits (holding the lock) until the barrier of `sequence` opens: the
 * result computed (departing 0) or the collective over (departing 1).
 * Aborts the communicator naming the ranks missing when the wait outlasts
 * the timeout. 1 when it opened, 0 when the communicator aborted. */
static int wait_barrier(cgr__host_comm *comm, uint64_t sequence, int departing,
                        const cgr__collective *c) {
  struct timespec deadline = deadline_after(comm->timeout_ms);
  long pause_us = 20;
  for (;;) {
    if (comm->aborted)
      return 0;
    if (departing ? comm->sequence != sequence : comm->computed)
      return 1;
    /* A dead lock holder (across processes) aborted the communicator in
     * lock_comm: the loop sees it. */
    int rc = wait_changed(comm, &deadline, &pause_us);
    if (rc != ETIMEDOUT || comm->aborted ||
        (departing ? comm->sequence != sequence : comm->computed))
      continue;
    char what[128], missing[64], why[CGR__ERROR_MESSAGE_SIZE];
    describe(c, what, sizeof what);
    ranks_missing(departing ? comm->departed_mask : comm->arrived_mask,
                  comm->ranks, missing, sizeof missing);
    snprintf(why, sizeof why,
             "collective #%llu (%s) timed out after %u ms: %s did not %s",
             (unsigned long long)sequence, what, comm->timeout_ms, missing,
             departing ? "finish it" : "arrive");
    abort_locked(comm, why);
    return 0;
  }
}

cgr_status cgr__host_comm_run(cgr__host_comm *comm, int rank,
                              const cgr__collective *c) {
  assert(rank >= 0 && rank < comm->ranks);
  unsigned bit = 1u << rank;
  lock_comm(comm);
  comm->inside++;
  /* A rank enters only after its previous collective's departure barrier,
   * which the last rank opened by moving to the next sequence. */
  uint64_t sequence = comm->sequence;
  int ok = !comm->aborted;
  size_t send_bytes = c->count * cgr__dtype_size(c->dtype);
  if (ok && comm->shared && send_bytes > comm->capacity) {
    char what[128], why[CGR__ERROR_MESSAGE_SIZE];
    describe(c, what, sizeof what);
    snprintf(why, sizeof why,
             "collective #%llu (%s): rank %d sends %zu bytes, over the %zu "
             "a rank may send through a communicator across processes",
             (unsigned long long)sequence, what, rank, send_bytes,
             comm->capacity);
    abort_locked(comm, why);
    ok = 0;
  }
  if (ok) {
    if (comm->shared)
      memcpy(staging(comm, rank), c->send, send_bytes);
    comm->calls[rank] = *c;
    comm->arrived_mask |= bit;
    if (comm->arrived_mask == (1u << comm->ranks) - 1)
      compute_locked(comm);
    ok = wait_barrier(comm, sequence, 0, c);
  }
  if (ok) {
    /* The result stays put until every rank departed. */
    const unsigned char *result = result_buffer(comm);
    size_t bytes = result_bytes(comm, c);
    pthread_mutex_unlock(&comm->lock);
    memcpy(c->recv, result, bytes);
    lock_comm(comm);
    comm->departed_mask |= bit;
    if (comm->departed_mask == (1u << comm->ranks) - 1) {
      comm->arrived_mask = comm->departed_mask = 0;
      comm->computed = 0;
      comm->sequence++;
      signal_changed(comm);
    }
    ok = wait_barrier(comm, sequence, 1, c);
  }
  if (--comm->inside == 0)
    signal_changed(comm);
  pthread_mutex_unlock(&comm->lock);
  return ok ? CGR_OK : CGR_E_TIMEOUT;
}

/* The host kernel: its status has nowhere to go but the communicator,
 * which cgr__comm_check reads after the step. */
static void run_collective(const void *args) {
  const cgr__host_comm_args *a = args;
  (void)cgr__host_comm_run(a->comm, a->rank, &a->collective);
}

const cgr__kernel cgr__host_comm_kernel = {
    .name = "cgr_host_collective",
    .args_size = sizeof(cgr__host_comm_args),
    .cuda_launch = NULL,
    .host_run = run_collective,
};
