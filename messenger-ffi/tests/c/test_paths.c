/*
 * Paths the other C tests do not take:
 *
 * - messenger_client_flush returns MESSENGER_TIMED_OUT while a member never acknowledges
 *   (every datagram it sends is lost), and MESSENGER_OK once that member is gone;
 * - messenger_client_new returns MESSENGER_PROTOCOL when what answers at the tracker's address
 *   sends a well-formed frame of the wrong kind (a heartbeat instead of the welcome), or a
 *   frame longer than the protocol allows (a fake tracker: a TCP listener in this test);
 * - one client handle used by four threads at once: two send, one lists groups and members,
 *   one reads metrics, counters and the UDP address; every message arrives once, each
 *   thread's messages in the order it sent them, in one total order at both members;
 * - the last error is per thread: a failure on one thread leaves another thread's message
 *   alone, and a new thread starts with the empty message.
 */
#include "harness.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <unistd.h>

typedef struct inbox {
  const char *name;
  waiter *w;
  int members; /* in the last view of "g" */
  /* Deliveries in "g": "sender:text". */
  char (*log)[32];
  int logged, capacity;
} inbox;

static void on_message(void *userdata, const char *group, const char *sender,
                       const uint8_t *bytes, size_t len, uint64_t seq) {
  inbox *in = userdata;
  char text[24];
  (void)group;
  (void)seq;
  copy_text(text, sizeof text, bytes, len);
  waiter_lock(in->w);
  if (in->logged < in->capacity) snprintf(in->log[in->logged], 32, "%s:%s", sender, text);
  in->logged++;
  waiter_signal(in->w);
}

static void on_view(void *userdata, const messenger_view *view) {
  inbox *in = userdata;
  waiter_lock(in->w);
  if (strcmp(view->group, "g") == 0) in->members = (int)view->members_len;
  waiter_signal(in->w);
}

static messenger_client *connect_inbox(const char *addr, inbox *in, const char *faults,
                                       uint32_t suspect_ms) {
  messenger_client_config *config = NULL;
  messenger_client *client = NULL;
  CHECK_OK(messenger_client_config_new(addr, in->name, &config));
  CHECK_OK(messenger_client_config_set_faults(config, faults));
  if (suspect_ms) CHECK_OK(messenger_client_config_set_suspect_timeout_ms(config, suspect_ms));
  CHECK_OK(messenger_client_config_on_message(config, on_message, in, NULL));
  CHECK_OK(messenger_client_config_on_view(config, on_view, in, NULL));
  CHECK_OK(messenger_client_new(config, &client));
  return client;
}

static messenger_result send_text(messenger_client *c, const char *text) {
  return messenger_client_send(c, "g", (const uint8_t *)text, strlen(text), NULL);
}

static void flush_times_out_while_a_member_never_acknowledges(void) {
  waiter w;
  waiter_init(&w);
  char addr[64];
  messenger_tracker *tracker = start_tracker(NULL, addr, sizeof addr);
  static char alog[4][32], blog[4][32];
  inbox ann = {.name = "ann", .w = &w, .log = alog, .capacity = 4};
  inbox bob = {.name = "bob", .w = &w, .log = blog, .capacity = 4};
  /* ann would report bob after a minute of silence: long after this test. */
  messenger_client *a = connect_inbox(addr, &ann, "", 60000);
  /* Every datagram bob sends is lost: he receives ann's messages but never acknowledges. */
  messenger_client *b = connect_inbox(addr, &bob, "loss=1.0", 0);
  CHECK_OK(messenger_client_join(a, "g", MESSENGER_ORDER_FIFO, NULL));
  CHECK_OK(messenger_client_join(b, "g", MESSENGER_ORDER_FIFO, NULL));
  WAIT_UNTIL(&w, ann.members == 2 && bob.members == 2, "both to see both");

  CHECK_OK(send_text(a, "one"));
  WAIT_UNTIL(&w, bob.logged == 1, "bob to get ann's message");
  /* bob has it, but ann cannot know: it is not stable. */
  CHECK_FAILS(messenger_client_flush(a, 300), MESSENGER_TIMED_OUT,
              "some messages were not stable after 300 ms");
  messenger_fault_counts f;
  CHECK_OK(messenger_client_fault_counts(b, &f));
  CHECK(f.dropped > 0);

  /* Once bob is gone, nobody is missing ann's message. */
  CHECK_OK(messenger_client_quit(b, NULL));
  WAIT_UNTIL(&w, ann.members == 1, "ann to see bob leave");
  CHECK_OK(messenger_client_flush(a, PATIENCE_SECONDS * 1000));
  CHECK_OK(messenger_client_quit(a, NULL));
  messenger_client_free(a);
  messenger_client_free(b);
  messenger_tracker_free(tracker);
  waiter_destroy(&w);
}

/* A fake tracker: accepts one connection, reads the hello, answers `reply`, and keeps the
 * connection open until the test is done with it. */
typedef struct fake_tracker {
  int listener;
  char addr[64];
  const uint8_t *reply;
  size_t reply_len;
  int hello_bytes; /* what it read before answering */
  waiter w;
  int done;
  pthread_t thread;
} fake_tracker;

static void *fake_tracker_run(void *arg) {
  fake_tracker *t = arg;
  int conn = accept(t->listener, NULL, NULL);
  CHECK(conn >= 0);
  uint8_t buf[512];
  ssize_t n = read(conn, buf, sizeof buf);
  CHECK(n > 0);
  t->hello_bytes = (int)n;
  CHECK(write(conn, t->reply, t->reply_len) == (ssize_t)t->reply_len);
  WAIT_UNTIL(&t->w, t->done, "the test to be done with the fake tracker");
  close(conn);
  return NULL;
}

static void fake_tracker_start(fake_tracker *t, const uint8_t *reply, size_t len) {
  memset(t, 0, sizeof *t);
  t->reply = reply;
  t->reply_len = len;
  waiter_init(&t->w);
  t->listener = socket(AF_INET, SOCK_STREAM, 0);
  CHECK(t->listener >= 0);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  CHECK(bind(t->listener, (struct sockaddr *)&sa, sizeof sa) == 0);
  CHECK(listen(t->listener, 4) == 0);
  socklen_t sl = sizeof sa;
  CHECK(getsockname(t->listener, (struct sockaddr *)&sa, &sl) == 0);
  snprintf(t->addr, sizeof t->addr, "127.0.0.1:%u", (unsigned)ntohs(sa.sin_port));
  CHECK(pthread_create(&t->thread, NULL, fake_tracker_run, t) == 0);
}

static void fake_tracker_stop(fake_tracker *t) {
  waiter_lock(&t->w);
  t->done = 1;
  waiter_signal(&t->w);
  CHECK(pthread_join(t->thread, NULL) == 0);
  close(t->listener);
  waiter_destroy(&t->w);
}

static void a_tracker_that_answers_wrongly_is_a_protocol_error(void) {
  /* A control frame: a 4-byte big-endian length, then the postcard encoding of a
   * ServerFrame. Variant 4 is Heartbeat { nonce }, here nonce 7. */
  static const uint8_t heartbeat[] = {0, 0, 0, 2, 4, 7};
  /* A length over the 1 MiB limit of a control frame. */
  static const uint8_t oversized[] = {0x7f, 0xff, 0xff, 0xff, 0};
  struct {
    const uint8_t *bytes;
    size_t len;
    const char *message;
  } cases[] = {
      {heartbeat, sizeof heartbeat, "expected a welcome, got Heartbeat { nonce: 7 }"},
      {oversized, sizeof oversized, "exceeds the limit of 1048576"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    static fake_tracker t;
    fake_tracker_start(&t, cases[i].bytes, cases[i].len);
    messenger_client_config *config = NULL;
    messenger_client *client = NULL;
    CHECK_OK(messenger_client_config_new(t.addr, "ann", &config));
    CHECK_OK(messenger_client_config_set_faults(config, ""));
    /* The fake speaks plain frames (a TLS client would refuse it before any frame). */
    CHECK_OK(messenger_client_config_set_insecure(config, true));
    CHECK_FAILS(messenger_client_new(config, &client), MESSENGER_PROTOCOL, cases[i].message);
    CHECK(client == NULL);
    fake_tracker_stop(&t);
    CHECK(t.hello_bytes > 4); /* it did say hello first */
  }
}

/* ----- one handle, four threads ------------------------------------------------------------ */

#define PER_THREAD 500

typedef struct shared {
  messenger_client *client;
  pthread_barrier_t start;
  atomic_int senders_left;
} shared;

typedef struct worker {
  shared *s;
  int index;
  int queries;
} worker;

static void *sender(void *arg) {
  worker *me = arg;
  pthread_barrier_wait(&me->s->start);
  char text[24];
  for (int i = 1; i <= PER_THREAD; i++) {
    snprintf(text, sizeof text, "t%d-%d", me->index, i);
    CHECK_OK(send_text(me->s->client, text));
  }
  atomic_fetch_sub(&me->s->senders_left, 1);
  return NULL;
}

/* Lists groups and members until the senders are done (and at least 20 times). */
static void *lister(void *arg) {
  worker *me = arg;
  pthread_barrier_wait(&me->s->start);
  while (atomic_load(&me->s->senders_left) > 0 || me->queries < 20) {
    messenger_member_list members;
    CHECK_OK(messenger_client_members(me->s->client, "g", &members));
    CHECK(members.len == 2);
    messenger_member_list_free(&members);
    messenger_group_list groups;
    CHECK_OK(messenger_client_groups(me->s->client, &groups));
    CHECK(groups.len == 1 && strcmp(groups.groups[0].name, "g") == 0);
    messenger_group_list_free(&groups);
    me->queries++;
  }
  return NULL;
}

/* Reads metrics (never going down), the tracker's counters and the UDP address. */
static void *reader(void *arg) {
  worker *me = arg;
  pthread_barrier_wait(&me->s->start);
  uint64_t last_sent = 0;
  while (atomic_load(&me->s->senders_left) > 0 || me->queries < 20) {
    messenger_metrics m;
    CHECK_OK(messenger_client_metrics(me->s->client, &m));
    CHECK(m.sent >= last_sent && m.sent <= 2 * PER_THREAD);
    last_sent = m.sent;
    messenger_tracker_counters c;
    CHECK_OK(messenger_client_tracker_stats(me->s->client, &c));
    CHECK(c.clients == 2 && c.memberships == 2);
    char udp[64];
    CHECK_OK(messenger_client_udp_address(me->s->client, udp, sizeof udp, NULL));
    CHECK(strncmp(udp, "127.0.0.1:", 10) == 0);
    me->queries++;
  }
  return NULL;
}

/* Each thread's messages in `log` come in the order it sent them, and all of them. */
static void check_thread_order(char (*log)[32], int len) {
  int next[2] = {1, 1};
  for (int i = 0; i < len; i++) {
    int t = -1, n = -1;
    CHECK(sscanf(log[i], "ann:t%d-%d", &t, &n) == 2 && (t == 0 || t == 1));
    if (n != next[t]) {
      fprintf(stderr, "thread %d's message %d came where %d was expected (%s)\n", t, n,
              next[t], log[i]);
      CHECK(!"each thread's messages in its order");
    }
    next[t]++;
  }
  CHECK(next[0] == PER_THREAD + 1 && next[1] == PER_THREAD + 1);
}

static void one_handle_from_four_threads(void) {
  waiter w;
  waiter_init(&w);
  char addr[64];
  messenger_tracker *tracker = start_tracker(NULL, addr, sizeof addr);
  static char alog[2 * PER_THREAD][32], blog[2 * PER_THREAD][32];
  inbox ann = {.name = "ann", .w = &w, .log = alog, .capacity = 2 * PER_THREAD};
  inbox bob = {.name = "bob", .w = &w, .log = blog, .capacity = 2 * PER_THREAD};
  messenger_client *a = connect_inbox(addr, &ann, "", 0);
  messenger_client *b = connect_inbox(addr, &bob, "", 0);
  CHECK_OK(messenger_client_join(a, "g", MESSENGER_ORDER_TOTAL, NULL));
  CHECK_OK(messenger_client_join(b, "g", MESSENGER_ORDER_TOTAL, NULL));
  WAIT_UNTIL(&w, ann.members == 2 && bob.members == 2, "both to see both");

  shared s = {.client = a};
  atomic_init(&s.senders_left, 2);
  CHECK(pthread_barrier_init(&s.start, NULL, 4) == 0);
  worker workers[4];
  void *(*bodies[4])(void *) = {sender, sender, lister, reader};
  pthread_t threads[4];
  for (int i = 0; i < 4; i++) {
    workers[i] = (worker){.s = &s, .index = i};
    CHECK(pthread_create(&threads[i], NULL, bodies[i], &workers[i]) == 0);
  }
  for (int i = 0; i < 4; i++) CHECK(pthread_join(threads[i], NULL) == 0);
  pthread_barrier_destroy(&s.start);
  CHECK(workers[2].queries >= 20 && workers[3].queries >= 20);

  WAIT_UNTIL(&w, ann.logged == 2 * PER_THREAD && bob.logged == 2 * PER_THREAD,
             "every message at both");
  waiter_lock(&w);
  check_thread_order(alog, ann.logged);
  for (int i = 0; i < 2 * PER_THREAD; i++) CHECK(strcmp(alog[i], blog[i]) == 0);
  pthread_mutex_unlock(&w.mu);
  messenger_metrics m;
  CHECK_OK(messenger_client_metrics(a, &m));
  CHECK(m.sent == 2 * PER_THREAD);

  CHECK_OK(messenger_client_quit(a, NULL));
  CHECK_OK(messenger_client_quit(b, NULL));
  /* More messages than the logs hold would have shown as logged > capacity. */
  CHECK(ann.logged == 2 * PER_THREAD && bob.logged == 2 * PER_THREAD);
  messenger_client_free(a);
  messenger_client_free(b);
  messenger_tracker_free(tracker);
  waiter_destroy(&w);
}

/* ----- the last error is per thread ----------------------------------------------------------- */

typedef struct steps {
  pthread_barrier_t step;
  char seen_at_start[64];
  char seen_at_end[64];
} steps;

static void *other_thread(void *arg) {
  steps *st = arg;
  /* A new thread has no failure yet. */
  snprintf(st->seen_at_start, sizeof st->seen_at_start, "%s", last_error_text());
  pthread_barrier_wait(&st->step); /* 1: main failed */
  CHECK(messenger_client_join(NULL, "g", MESSENGER_ORDER_FIFO, NULL) == MESSENGER_NULL_ARGUMENT);
  pthread_barrier_wait(&st->step); /* 2: this thread failed */
  pthread_barrier_wait(&st->step); /* 3: main failed again */
  snprintf(st->seen_at_end, sizeof st->seen_at_end, "%s", last_error_text());
  return NULL;
}

static void the_last_error_is_per_thread(void) {
  steps st;
  CHECK(pthread_barrier_init(&st.step, NULL, 2) == 0);
  pthread_t t;
  CHECK(pthread_create(&t, NULL, other_thread, &st) == 0);
  messenger_tracker *tracker = NULL;
  CHECK(messenger_tracker_new(NULL, NULL, 0, 0, &tracker) == MESSENGER_NULL_ARGUMENT);
  pthread_barrier_wait(&st.step); /* 1 */
  pthread_barrier_wait(&st.step); /* 2: the other thread's failure is its own */
  CHECK(strcmp(last_error_text(), "bind is NULL") == 0);
  CHECK(messenger_tracker_new("nowhere", NULL, 0, 0, &tracker) == MESSENGER_INVALID_ARGUMENT);
  CHECK(strstr(last_error_text(), "\"nowhere\"") != NULL);
  pthread_barrier_wait(&st.step); /* 3 */
  CHECK(pthread_join(t, NULL) == 0);
  pthread_barrier_destroy(&st.step);
  CHECK(strcmp(st.seen_at_start, "") == 0);
  CHECK(strcmp(st.seen_at_end, "client is NULL") == 0);
}

int main(void) {
  test_name = "test_paths";
  the_last_error_is_per_thread();
  a_tracker_that_answers_wrongly_is_a_protocol_error();
  flush_times_out_while_a_member_never_acknowledges();
  one_handle_from_four_threads();
  printf("test_paths: ok\n");
  return 0;
}
