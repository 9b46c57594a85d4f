/*
 * What the C tests share: checks that print the library's last error, a waiter (a mutex and
 * a condition variable with a deadline: tests never sleep to synchronise), a tracker on a free
 * port, a policy file, and a counter for userdata free functions.
 */
#ifndef MESSENGER_TEST_HARNESS_H
#define MESSENGER_TEST_HARNESS_H

#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "messenger.h"

/* How long anything expected may take to happen. */
#define PATIENCE_SECONDS 30

static const char *test_name = "test";

static inline const char *last_error_text(void) {
  static _Thread_local char buf[1024];
  size_t len = 0;
  if (messenger_last_error(buf, sizeof buf, &len) != MESSENGER_OK) {
    snprintf(buf, sizeof buf, "(the message is longer than %zu bytes)", sizeof buf);
  }
  return buf;
}

static inline void fail(const char *file, int line, const char *what) {
  fprintf(stderr, "%s: FAILED at %s:%d: %s\n", test_name, file, line, what);
  exit(1);
}

#define CHECK(cond)                                                                            \
  do {                                                                                         \
    if (!(cond)) fail(__FILE__, __LINE__, #cond);                                              \
  } while (0)

/* A call that must succeed. */
#define CHECK_OK(call)                                                                         \
  do {                                                                                         \
    messenger_result r_ = (call);                                                              \
    if (r_ != MESSENGER_OK) {                                                                  \
      fprintf(stderr, "%s: FAILED at %s:%d: %s returned %s: %s\n", test_name, __FILE__,       \
              __LINE__, #call, messenger_result_name(r_), last_error_text());                  \
      exit(1);                                                                                 \
    }                                                                                          \
  } while (0)

/* A call that must fail with `code` and a last error containing `text`. */
#define CHECK_FAILS(call, code, text)                                                          \
  do {                                                                                         \
    messenger_result r_ = (call);                                                              \
    if (r_ != (code)) {                                                                        \
      fprintf(stderr, "%s: FAILED at %s:%d: %s returned %s, expected %s (%s)\n", test_name,   \
              __FILE__, __LINE__, #call, messenger_result_name(r_), #code, last_error_text()); \
      exit(1);                                                                                 \
    }                                                                                          \
    if (strstr(last_error_text(), (text)) == NULL) {                                           \
      fprintf(stderr, "%s: FAILED at %s:%d: %s: message \"%s\" does not contain \"%s\"\n",    \
              test_name, __FILE__, __LINE__, #call, last_error_text(), (text));                \
      exit(1);                                                                                 \
    }                                                                                          \
  } while (0)

/* A mutex and a condition variable on the monotonic clock. */
typedef struct waiter {
  pthread_mutex_t mu;
  pthread_cond_t cv;
} waiter;

static inline void waiter_init(waiter *w) {
  pthread_condattr_t attr;
  CHECK(pthread_mutex_init(&w->mu, NULL) == 0);
  CHECK(pthread_condattr_init(&attr) == 0);
  CHECK(pthread_condattr_setclock(&attr, CLOCK_MONOTONIC) == 0);
  CHECK(pthread_cond_init(&w->cv, &attr) == 0);
  pthread_condattr_destroy(&attr);
}

static inline void waiter_destroy(waiter *w) {
  pthread_cond_destroy(&w->cv);
  pthread_mutex_destroy(&w->mu);
}

static inline void waiter_lock(waiter *w) { pthread_mutex_lock(&w->mu); }

/* Unlocks and wakes every waiter: call after changing what they wait for. */
static inline void waiter_signal(waiter *w) {
  pthread_cond_broadcast(&w->cv);
  pthread_mutex_unlock(&w->mu);
}

static inline struct timespec deadline_after(int seconds) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  t.tv_sec += seconds;
  return t;
}

/*
 * Waits until `cond` holds (evaluated with the waiter's mutex held); fails the test after
 * PATIENCE_SECONDS.
 */
#define WAIT_UNTIL(w, cond, what)                                                              \
  do {                                                                                         \
    struct timespec dl_ = deadline_after(PATIENCE_SECONDS);                                    \
    pthread_mutex_lock(&(w)->mu);                                                              \
    while (!(cond)) {                                                                          \
      int e_ = pthread_cond_timedwait(&(w)->cv, &(w)->mu, &dl_);                               \
      if (e_ == ETIMEDOUT && !(cond)) {                                                        \
        pthread_mutex_unlock(&(w)->mu);                                                        \
        fprintf(stderr, "%s: FAILED at %s:%d: timed out after %d s waiting for %s\n",          \
                test_name, __FILE__, __LINE__, PATIENCE_SECONDS, (what));                      \
        exit(1);                                                                               \
      }                                                                                        \
    }                                                                                          \
    pthread_mutex_unlock(&(w)->mu);                                                            \
  } while (0)

/* Writes a policy file and returns its path (static storage). */
static inline const char *write_policy(const char *text) {
  static char path[64];
  strcpy(path, "/tmp/messenger-test-policy-XXXXXX");
  int fd = mkstemp(path);
  CHECK(fd >= 0);
  size_t len = strlen(text);
  CHECK(write(fd, text, len) == (ssize_t)len);
  CHECK(close(fd) == 0);
  return path;
}

/* A tracker on a free loopback port; its address goes to `addr`. */
static inline messenger_tracker *start_tracker(const char *policy_file, char *addr, size_t len) {
  messenger_tracker *tracker = NULL;
  CHECK_OK(messenger_tracker_new("127.0.0.1:0", policy_file, 0, 0, &tracker));
  CHECK(tracker != NULL);
  CHECK_OK(messenger_tracker_address(tracker, addr, len, NULL));
  return tracker;
}

/* Counts calls of a userdata free function, per userdata. */
typedef struct free_counter {
  waiter *w;
  int freed;
} free_counter;

static inline void count_free(void *userdata) {
  free_counter *c = userdata;
  waiter_lock(c->w);
  c->freed++;
  waiter_signal(c->w);
}

static inline int freed_count(free_counter *c) {
  waiter_lock(c->w);
  int n = c->freed;
  pthread_mutex_unlock(&c->w->mu);
  return n;
}

/* A copy of a message's bytes as a string. */
static inline void copy_text(char *dst, size_t cap, const uint8_t *bytes, size_t len) {
  size_t n = len < cap - 1 ? len : cap - 1;
  memcpy(dst, bytes, n);
  dst[n] = '\0';
}

#endif /* MESSENGER_TEST_HARNESS_H */
