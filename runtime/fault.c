#include "runtime/fault.h"

#include <ctype.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* An armed plan and its count. */
typedef struct plan_state {
  cgr__call call;
  cgr__fault_mode mode;
  int sticky;
  int any_site;
  char site[CGR__FAULT_SITE_NAME];
  uint64_t nth;
  uint64_t seen;
} plan_state;

/* A site's count: open addressing on (call, name), twice the sites. */
typedef struct site_slot {
  int used;
  cgr__call call;
  char func[CGR__FAULT_SITE_NAME];
  uint64_t hits;
} site_slot;

enum { SITE_SLOTS = 2 * CGR__FAULT_MAX_SITES, MAX_LEFT = 64 };

typedef struct left_error {
  const void *owner;
  cgr__fault_at at;
} left_error;

/* Everything below is guarded by `lock`; `armed`, `fired` and `raised` are
 * also read without it. Only calls made while armed take the lock. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static _Atomic int armed;
/* Armed plans plus errors left behind, read by cgr__fault_idle. */
_Atomic int cgr__fault_engaged_;
static _Atomic int fired;
static _Atomic uint64_t raised;
static int has_last;
static cgr__fault_at last_at;
static plan_state plans[CGR__FAULT_MAX_PLANS];
static size_t plan_count;
static site_slot sites[SITE_SLOTS];
static uint16_t site_order[CGR__FAULT_MAX_SITES]; /* slots, first seen */
static size_t site_count;
static left_error left[MAX_LEFT];
static _Atomic size_t left_count;

/* cgr__fault_engaged_ follows `armed` and `left_count` (lock held), and
 * so does the backends' CGR__TROUBLE_FAULT. */
static void engage(void) {
  int engaged = atomic_load(&armed) || atomic_load(&left_count) > 0;
  if (engaged)
    cgr__be_trouble_raise(CGR__TROUBLE_FAULT);
  atomic_store(&cgr__fault_engaged_, engaged);
  if (!engaged)
    atomic_fetch_and(&cgr__be_trouble_, ~CGR__TROUBLE_FAULT);
}

/* The carry of ASYNC work, for the call this thread is making. */
static _Thread_local struct {
  int set;
  int taken;
  cgr__fault_at at;
} carry;

int cgr__fault_mode_fits(cgr__call call, cgr__fault_mode mode) {
  switch (mode) {
  case CGR__FAULT_NOW:
    return (int)call >= 0 && (int)call < CGR__CALL_COUNT;
  case CGR__FAULT_ASYNC:
    return call == CGR__CALL_COPY || call == CGR__CALL_MEMSET ||
           call == CGR__CALL_KERNEL_LAUNCH || call == CGR__CALL_GRAPH_LAUNCH;
  case CGR__FAULT_DEFERRED:
    return cgr__fault_mode_fits(call, CGR__FAULT_ASYNC) ||
           call == CGR__CALL_HOST_FUNC || call == CGR__CALL_EVENT_RECORD ||
           call == CGR__CALL_EVENT_WAIT;
  }
  return 0;
}

/* ---- arming -------------------------------------------------------------- */

int cgr__fault_arm_plans(const cgr__fault_plan *new_plans, size_t count) {
  if (count > CGR__FAULT_MAX_PLANS)
    return 0;
  for (size_t i = 0; i < count; ++i) {
    const cgr__fault_plan *p = &new_plans[i];
    if (p->nth == 0 || !cgr__fault_mode_fits(p->call, p->mode) ||
        (p->sticky && p->mode != CGR__FAULT_NOW) ||
        (p->site != NULL && strlen(p->site) >= CGR__FAULT_SITE_NAME))
      return 0;
  }
  pthread_mutex_lock(&lock);
  atomic_store(&armed, 0);
  engage();
  for (size_t i = 0; i < count; ++i) {
    const cgr__fault_plan *p = &new_plans[i];
    plan_state *s = &plans[i];
    memset(s, 0, sizeof *s);
    s->call = p->call;
    s->mode = p->mode;
    s->sticky = p->sticky;
    s->any_site = p->site == NULL;
    if (p->site != NULL)
      snprintf(s->site, sizeof s->site, "%s", p->site);
    s->nth = p->nth;
  }
  plan_count = count;
  memset(sites, 0, sizeof sites);
  site_count = 0;
  has_last = 0;
  atomic_store(&fired, 0);
  atomic_store(&raised, 0);
  atomic_store(&armed, 1);
  engage();
  pthread_mutex_unlock(&lock);
  return 1;
}

void cgr__fault_arm(cgr__call call, uint64_t nth) {
  cgr__fault_plan plan = {.call = call, .nth = nth};
  (void)cgr__fault_arm_plans(&plan, 1);
}

void cgr__fault_arm_sticky(cgr__call call, uint64_t nth) {
  cgr__fault_plan plan = {.call = call, .nth = nth, .sticky = 1};
  (void)cgr__fault_arm_plans(&plan, 1);
}

void cgr__fault_disarm(void) {
  pthread_mutex_lock(&lock);
  atomic_store(&armed, 0);
  engage();
  pthread_mutex_unlock(&lock);
}

/* The kind named `name` (length len, any case); 0 when there is none. */
static int call_named(const char *name, size_t len, cgr__call *out) {
  for (int call = 0; call < CGR__CALL_COUNT; ++call) {
    const char *candidate = cgr__call_name((cgr__call)call);
    if (strlen(candidate) == len && strncasecmp(candidate, name, len) == 0) {
      *out = (cgr__call)call;
      return 1;
    }
  }
  return 0;
}

/* "plan 'COPY:x': <what>", the plan cut to fit. Returns 0. */
static int bad_plan(char *why, size_t why_size, const char *text, size_t len,
                    const char *what) {
  snprintf(why, why_size, "plan '%.*s%s': %s", (int)(len < 24 ? len : 24), text,
           len > 24 ? "..." : "", what);
  return 0;
}

/* One plan of CGR_FAULT, KIND[@SITE]:N[+][:MODE] (spaces around it
 * ignored); a site's name is written into `site`. 0 with why when it
 * means nothing. */
static int parse_plan(const char *text, size_t len, cgr__fault_plan *plan,
                      char *site, char *why, size_t why_size) {
  memset(plan, 0, sizeof *plan);
  while (len > 0 && isspace((unsigned char)*text))
    text++, len--;
  while (len > 0 && isspace((unsigned char)text[len - 1]))
    len--;
  const char *end = text + len;
  const char *colon = memchr(text, ':', len);
  if (colon == NULL)
    return bad_plan(why, why_size, text, len, "no ':N'");
  const char *at = memchr(text, '@', (size_t)(colon - text));
  const char *kind_end = at != NULL ? at : colon;
  if (!call_named(text, (size_t)(kind_end - text), &plan->call))
    return bad_plan(why, why_size, text, len,
                    "not a call kind (COPY, KERNEL_LAUNCH, ...)");
  if (at != NULL) {
    size_t site_len = (size_t)(colon - at - 1);
    if (site_len == 0 || site_len >= CGR__FAULT_SITE_NAME)
      return bad_plan(why, why_size, text, len, "the site is empty or long");
    memcpy(site, at + 1, site_len);
    site[site_len] = '\0';
    plan->site = site;
  }
  const char *p = colon + 1;
  while (p < end && isdigit((unsigned char)*p) && plan->nth < UINT32_MAX)
    plan->nth = plan->nth * 10 + (uint64_t)(*p++ - '0');
  if (plan->nth == 0 || (p < end && isdigit((unsigned char)*p)))
    return bad_plan(why, why_size, text, len, "N must be from 1 to 4294967295");
  if (p < end && *p == '+') {
    plan->sticky = 1;
    p++;
  }
  if (p < end) {
    static const char *const modes[] = {":now", ":async", ":deferred"};
    size_t mode_len = (size_t)(end - p);
    int m = 0;
    while (m < 3 && (strlen(modes[m]) != mode_len ||
                     strncasecmp(p, modes[m], mode_len) != 0))
      m++;
    if (m == 3)
      return bad_plan(why, why_size, text, len,
                      "ends in neither :now, :async nor :deferred");
    plan->mode = (cgr__fault_mode)m;
  }
  if (!cgr__fault_mode_fits(plan->call, plan->mode))
    return bad_plan(why, why_size, text, len,
                    plan->mode == CGR__FAULT_ASYNC
                        ? "only COPY, MEMSET, KERNEL_LAUNCH, "
                          "GRAPH_LAUNCH can be :async"
                        : "only work and event calls can be :deferred");
  if (plan->sticky && plan->mode != CGR__FAULT_NOW)
    return bad_plan(why, why_size, text, len, "only :now can be sticky (+)");
  return 1;
}

int cgr__fault_arm_text(const char *text, char *why, size_t why_size) {
  cgr__fault_plan parsed[CGR__FAULT_MAX_PLANS];
  char names[CGR__FAULT_MAX_PLANS][CGR__FAULT_SITE_NAME];
  size_t count = 0;
  const char *p = text;
  for (;;) {
    const char *comma = strchr(p, ',');
    size_t len = comma != NULL ? (size_t)(comma - p) : strlen(p);
    if (count == CGR__FAULT_MAX_PLANS) {
      snprintf(why, why_size, "more than %d plans", CGR__FAULT_MAX_PLANS);
      return 0;
    }
    if (!parse_plan(p, len, &parsed[count], names[count], why, why_size))
      return 0;
    count++;
    if (comma == NULL)
      break;
    p = comma + 1;
  }
  if (!cgr__fault_arm_plans(parsed, count)) {
    snprintf(why, why_size, "could not be armed");
    return 0;
  }
  return 1;
}

/* ---- what was seen --------------------------------------------------------
 */

uint64_t cgr__fault_seen(void) {
  pthread_mutex_lock(&lock);
  uint64_t seen = plan_count > 0 ? plans[0].seen : 0;
  pthread_mutex_unlock(&lock);
  return seen;
}

int cgr__fault_fired(void) { return atomic_load(&fired); }

int cgr__fault_last(cgr__fault_at *out) {
  pthread_mutex_lock(&lock);
  int found = has_last;
  if (found)
    *out = last_at;
  pthread_mutex_unlock(&lock);
  return found;
}

uint64_t cgr__fault_raised(void) { return atomic_load(&raised); }

size_t cgr__fault_sites(cgr__fault_site_hits *out, size_t capacity) {
  pthread_mutex_lock(&lock);
  size_t count = site_count;
  for (size_t i = 0; i < count && i < capacity; ++i) {
    const site_slot *slot = &sites[site_order[i]];
    out[i].call = slot->call;
    snprintf(out[i].func, sizeof out[i].func, "%s", slot->func);
    out[i].hits = slot->hits;
  }
  pthread_mutex_unlock(&lock);
  return count;
}

/* The last two parts of a path: "replay/replay.c". */
static const char *short_path(const char *path) {
  const char *last = strrchr(path, '/');
  if (last == NULL)
    return path;
  const char *before = last;
  while (before > path && before[-1] != '/')
    before--;
  return before;
}

void cgr__fault_describe(const cgr__fault_at *at, char *out, size_t size) {
  snprintf(out, size,
           "%s call #%" PRIu64 " (hit #%" PRIu64 " of site %s, %s:%d)",
           cgr__call_name(at->call), at->hit, at->site_hit, at->site.func,
           short_path(at->site.file), at->site.line);
}

cgr_status cgr__fault_status(cgr__call call) {
  switch (call) {
#define CGR__CALL_STATUS_(name, fault_status)                                  \
  case CGR__CALL_##name:                                                       \
    return fault_status;
    CGR__CALL_LIST(CGR__CALL_STATUS_)
#undef CGR__CALL_STATUS_
  default:
    return CGR_E_INTERNAL;
  }
}

/* ---- counting ------------------------------------------------------------ */

static uint32_t site_hash(cgr__call call, const char *func) {
  uint32_t hash = 2166136261u ^ (uint32_t)call;
  for (const char *c = func; *c != '\0'; ++c)
    hash = (hash ^ (unsigned char)*c) * 16777619u;
  return hash;
}

/* Counts one call at (call, func); returns the site's count (0 once the
 * table is full: such a site cannot be named by its count). Under lock. */
static uint64_t count_site(cgr__call call, const char *func) {
  uint32_t slot = site_hash(call, func) % SITE_SLOTS;
  for (uint32_t probe = 0; probe < SITE_SLOTS; ++probe) {
    site_slot *s = &sites[(slot + probe) % SITE_SLOTS];
    if (!s->used) {
      if (site_count == CGR__FAULT_MAX_SITES)
        return 0;
      s->used = 1;
      s->call = call;
      snprintf(s->func, sizeof s->func, "%s", func);
      site_order[site_count++] = (uint16_t)((slot + probe) % SITE_SLOTS);
    } else if (s->call != call || strncmp(s->func, func, sizeof s->func) != 0) {
      continue;
    }
    return ++s->hits;
  }
  return 0;
}

int cgr__fault_check(cgr__call call, cgr__site site, cgr__fault_at *at) {
  if (!atomic_load_explicit(&armed, memory_order_relaxed))
    return 0;
  int fire = 0;
  pthread_mutex_lock(&lock);
  if (atomic_load_explicit(&armed, memory_order_relaxed)) {
    uint64_t site_hit = count_site(call, site.func);
    for (size_t i = 0; i < plan_count; ++i) {
      plan_state *p = &plans[i];
      if (p->call != call ||
          (!p->any_site && strncmp(p->site, site.func, sizeof p->site) != 0))
        continue;
      uint64_t n = ++p->seen;
      if (!fire && (n == p->nth || (p->sticky && n > p->nth))) {
        fire = 1;
        *at = (cgr__fault_at){call, p->mode, site, n, site_hit};
        last_at = *at;
        has_last = 1;
      }
    }
  }
  pthread_mutex_unlock(&lock);
  if (fire)
    atomic_store(&fired, 1);
  return fire;
}

int cgr__fault_hit_at(cgr__call call, cgr__site site) {
  cgr__fault_at at = {0};
  return cgr__fault_check(call, site, &at) && at.mode == CGR__FAULT_NOW;
}

/* ---- ASYNC: work that faults when it runs --------------------------------
 */

void cgr__fault_carry_begin(const cgr__fault_at *at) {
  carry.set = 1;
  carry.taken = 0;
  carry.at = *at;
}

int cgr__fault_carry_take(cgr__fault_at *out) {
  if (!carry.set || carry.taken)
    return 0;
  carry.taken = 1;
  *out = carry.at;
  return 1;
}

int cgr__fault_carry_end(void) {
  int untaken = carry.set && !carry.taken;
  carry.set = 0;
  return untaken;
}

void cgr__fault_raise(const cgr__fault_at *at, const char *what, char *out,
                      size_t size) {
  atomic_fetch_add(&raised, 1);
  char where[200];
  cgr__fault_describe(at, where, sizeof where);
  snprintf(out, size,
           "%s raised a device fault (injected asynchronous fault in %s, "
           "as an illegal address on a GPU)",
           what, where);
}

/* ---- DEFERRED: errors left behind ---------------------------------------- */

void cgr__fault_leave(const void *owner, const cgr__fault_at *at) {
  pthread_mutex_lock(&lock);
  size_t count = atomic_load_explicit(&left_count, memory_order_relaxed);
  /* A full list drops the newest: tests leave one at a time. */
  if (count < MAX_LEFT) {
    left[count] = (left_error){owner, *at};
    atomic_store(&left_count, count + 1);
    engage();
  }
  pthread_mutex_unlock(&lock);
}

int cgr__fault_take_left(const void *owner, cgr__fault_at *out) {
  if (atomic_load_explicit(&left_count, memory_order_relaxed) == 0)
    return 0;
  int found = 0;
  pthread_mutex_lock(&lock);
  size_t count = atomic_load_explicit(&left_count, memory_order_relaxed);
  for (size_t i = 0; i < count; ++i) {
    if (left[i].owner != owner)
      continue;
    *out = left[i].at;
    memmove(&left[i], &left[i + 1], (count - i - 1) * sizeof left[0]);
    atomic_store(&left_count, count - 1);
    engage();
    found = 1;
    break;
  }
  pthread_mutex_unlock(&lock);
  return found;
}

void cgr__fault_forget(const void *owner) {
  cgr__fault_at at;
  while (cgr__fault_take_left(owner, &at))
    ;
}

size_t cgr__fault_left_count(void) { return atomic_load(&left_count); }
