/*
 * How a client leaves a group without asking, over real sockets on 127.0.0.1:
 *
 * - the tracker restarts with a policy that refuses one of the client's two groups: one
 *   MESSENGER_EVENT_REJOIN_FAILED names that group and why, MESSENGER_EVENT_RECONNECTED names
 *   the other, and sending to the refused group fails with MESSENGER_NOT_JOINED;
 * - a member whose every datagram is lost (faults loss=1.0) while its tracker connection is
 *   fine is reported by the others and removed: it gets MESSENGER_EVENT_REMOVED, the others a
 *   view without it, and their total order goes on;
 * - a client frozen with SIGSTOP (in a child process) answers no heartbeat: the tracker made
 *   with heartbeats of 200 ms x 4 drops it, not before 4 x 200 ms, and the other member sees
 *   the view without it.
 *
 * - a sender whose first message never arrives anywhere (faults drop_seq=1: every datagram
 *   carrying it is dropped) leaves: its second message, held behind the gap, is reported with
 *   MESSENGER_EVENT_LOST at both other members, in fifo and in total order.
 */
#include "harness.h"

#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

typedef struct inbox {
  const char *name;
  waiter *w;
  /* Events. */
  int tracker_lost, reconnected, rejoin_failed, removed, lost;
  char reconnected_text[256], rejoin_group[64], rejoin_text[256], removed_group[64],
      removed_text[256], lost_group[64], lost_text[256];
  /* The last view of each group it saw (by name), and whether someone left it. */
  char view_group[4][32];
  int view_members[4];
  char view_left[4][64];
  /* Deliveries: "sender:text", in order. */
  char log[32][48];
  int logged;
} inbox;

static int view_slot(inbox *in, const char *group) {
  for (int i = 0; i < 4; i++) {
    if (in->view_group[i][0] == '\0') snprintf(in->view_group[i], 32, "%s", group);
    if (strcmp(in->view_group[i], group) == 0) return i;
  }
  return 3;
}

/* Members in the last view of `group` (0 if none yet); call with the mutex held. */
static int members_of(inbox *in, const char *group) {
  for (int i = 0; i < 4; i++) {
    if (strcmp(in->view_group[i], group) == 0) return in->view_members[i];
  }
  return 0;
}

static const char *left_of(inbox *in, const char *group) {
  for (int i = 0; i < 4; i++) {
    if (strcmp(in->view_group[i], group) == 0) return in->view_left[i];
  }
  return "";
}

static void on_message(void *userdata, const char *group, const char *sender,
                       const uint8_t *bytes, size_t len, uint64_t seq) {
  inbox *in = userdata;
  char text[32];
  (void)group;
  (void)seq;
  copy_text(text, sizeof text, bytes, len);
  waiter_lock(in->w);
  if (in->logged < 32) snprintf(in->log[in->logged++], 48, "%s:%s", sender, text);
  waiter_signal(in->w);
}

static void on_view(void *userdata, const messenger_view *view) {
  inbox *in = userdata;
  waiter_lock(in->w);
  int slot = view_slot(in, view->group);
  in->view_members[slot] = (int)view->members_len;
  for (size_t i = 0; i < view->left_len; i++) {
    snprintf(in->view_left[slot], 64, "%s", view->left[i]);
  }
  waiter_signal(in->w);
}

static void on_event(void *userdata, messenger_event_kind kind, const char *group,
                     const char *text) {
  inbox *in = userdata;
  fprintf(stderr, "%s: event %u (%s): %s\n", in->name, (unsigned)kind, group ? group : "-",
          text);
  waiter_lock(in->w);
  switch (kind) {
  case MESSENGER_EVENT_TRACKER_LOST:
    in->tracker_lost++;
    break;
  case MESSENGER_EVENT_RECONNECTED:
    in->reconnected++;
    snprintf(in->reconnected_text, sizeof in->reconnected_text, "%s", text);
    break;
  case MESSENGER_EVENT_REJOIN_FAILED:
    in->rejoin_failed++;
    snprintf(in->rejoin_group, sizeof in->rejoin_group, "%s", group ? group : "(NULL)");
    snprintf(in->rejoin_text, sizeof in->rejoin_text, "%s", text);
    break;
  case MESSENGER_EVENT_LOST:
    in->lost++;
    snprintf(in->lost_group, sizeof in->lost_group, "%s", group ? group : "(NULL)");
    snprintf(in->lost_text, sizeof in->lost_text, "%s", text);
    break;
  case MESSENGER_EVENT_REMOVED:
    in->removed++;
    snprintf(in->removed_group, sizeof in->removed_group, "%s", group ? group : "(NULL)");
    snprintf(in->removed_text, sizeof in->removed_text, "%s", text);
    break;
  default:
    break;
  }
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
  CHECK_OK(messenger_client_config_on_event(config, on_event, in, NULL));
  CHECK_OK(messenger_client_new(config, &client));
  return client;
}

static messenger_result send_text(messenger_client *c, const char *group, const char *text) {
  return messenger_client_send(c, group, (const uint8_t *)text, strlen(text), NULL);
}

static void a_group_the_new_tracker_refuses(void) {
  waiter w;
  waiter_init(&w);
  char addr[64];
  messenger_tracker *tracker = start_tracker(NULL, addr, sizeof addr);
  static inbox ann;
  memset(&ann, 0, sizeof ann);
  ann.name = "ann";
  ann.w = &w;
  messenger_client *a = connect_inbox(addr, &ann, "", 0);
  CHECK_OK(messenger_client_join(a, "room", MESSENGER_ORDER_FIFO, NULL));
  CHECK_OK(messenger_client_join(a, "hall", MESSENGER_ORDER_FIFO, NULL));
  WAIT_UNTIL(&w, members_of(&ann, "room") == 1 && members_of(&ann, "hall") == 1,
             "ann in both groups");

  messenger_tracker_free(tracker); /* stops it */
  WAIT_UNTIL(&w, ann.tracker_lost == 1, "ann to report the tracker lost");
  /* Back on the same address, where "room" now needs a password ann does not have. */
  const char *policy = write_policy("[[group]]\nname = \"room\"\npassword = \"new\"\n");
  CHECK_OK(messenger_tracker_new(addr, policy, 0, 0, &tracker));
  unlink(policy);
  WAIT_UNTIL(&w, ann.reconnected == 1, "ann to reconnect");

  waiter_lock(&w);
  /* RECONNECTED comes after every re-join was tried: the refusal is known by then. */
  CHECK(ann.rejoin_failed == 1);
  CHECK(strcmp(ann.rejoin_group, "room") == 0);
  CHECK(strstr(ann.rejoin_text, "could not re-join room") != NULL);
  CHECK(strstr(ann.rejoin_text, "password") != NULL);
  CHECK(strstr(ann.reconnected_text, "re-joined hall") != NULL);
  CHECK(strstr(ann.reconnected_text, "room") == NULL);
  pthread_mutex_unlock(&w.mu);

  /* The refused group is gone from the client; the other one works. */
  CHECK_FAILS(send_text(a, "room", "x"), MESSENGER_NOT_JOINED, "room");
  CHECK_OK(send_text(a, "hall", "still here"));
  WAIT_UNTIL(&w, ann.logged == 1, "ann's message in hall");
  CHECK(strcmp(ann.log[0], "ann:still here") == 0);
  messenger_member_list members;
  CHECK_FAILS(messenger_client_members(a, "room", &members), MESSENGER_UNKNOWN_GROUP, "room");

  CHECK_OK(messenger_client_quit(a, NULL));
  messenger_client_free(a);
  messenger_tracker_free(tracker);
  waiter_destroy(&w);
}

/* A tracker and three clients, ann, bob and cid (with the faults `cid_faults`), each in
 * `group`; a suspect timeout of `suspect_ms` (0: the default) for all three. The caller's
 * trio has static storage: the callbacks hold pointers into it. */
typedef struct trio {
  waiter w;
  char addr[64];
  messenger_tracker *tracker;
  inbox ann, bob, cid;
  messenger_client *a, *b, *c;
} trio;

static void trio_start(trio *t, const char *group, messenger_order order, const char *cid_faults,
                       uint32_t suspect_ms) {
  waiter_init(&t->w);
  t->tracker = start_tracker(NULL, t->addr, sizeof t->addr);
  t->ann = (inbox){.name = "ann", .w = &t->w};
  t->bob = (inbox){.name = "bob", .w = &t->w};
  t->cid = (inbox){.name = "cid", .w = &t->w};
  t->a = connect_inbox(t->addr, &t->ann, "", suspect_ms);
  t->b = connect_inbox(t->addr, &t->bob, "", suspect_ms);
  t->c = connect_inbox(t->addr, &t->cid, cid_faults, suspect_ms);
  CHECK_OK(messenger_client_join(t->a, group, order, NULL));
  CHECK_OK(messenger_client_join(t->b, group, order, NULL));
  CHECK_OK(messenger_client_join(t->c, group, order, NULL));
}

static void trio_stop(trio *t) {
  for (messenger_client **x = (messenger_client *[]){t->a, t->b, t->c, NULL}; *x; x++) {
    CHECK_OK(messenger_client_quit(*x, NULL));
    messenger_client_free(*x);
  }
  messenger_tracker_free(t->tracker);
  waiter_destroy(&t->w);
}

static void a_member_silent_on_the_data_plane_is_removed(void) {
  static trio t;
  /* ann and bob report a member silent for 1 s (long enough that a client thread starved on a
   * busy machine is not taken for a silent one); every datagram cid sends is lost, while its
   * tracker connection (TCP) is untouched. */
  trio_start(&t, "quiet", MESSENGER_ORDER_TOTAL, "loss=1.0", 1000);
  inbox *ann = &t.ann, *bob = &t.bob, *cid = &t.cid;

  WAIT_UNTIL(&t.w, cid->removed == 1, "cid to learn it was removed");
  WAIT_UNTIL(&t.w,
             members_of(ann, "quiet") == 2 && strcmp(left_of(ann, "quiet"), "cid") == 0 &&
                 members_of(bob, "quiet") == 2 && strcmp(left_of(bob, "quiet"), "cid") == 0,
             "ann and bob to see the view without cid");
  waiter_lock(&t.w);
  CHECK(strcmp(cid->removed_group, "quiet") == 0);
  CHECK(strstr(cid->removed_text, "removed this client from quiet") != NULL);
  CHECK(ann->removed == 0 && bob->removed == 0);
  pthread_mutex_unlock(&t.w.mu);
  messenger_tracker_counters stats;
  CHECK_OK(messenger_tracker_stats(t.tracker, &stats));
  CHECK(stats.clients == 3);         /* cid is still connected, */
  CHECK(stats.clients_dropped == 0); /* it answered its heartbeats */
  CHECK(stats.memberships == 2);
  CHECK(stats.members_suspected == 1); /* cid, on ann's and bob's reports */
  CHECK(stats.refused_connections == 0);

  /* The survivors' total order goes on. */
  for (int i = 1; i <= 5; i++) {
    char text[16];
    snprintf(text, sizeof text, "a%d", i);
    CHECK_OK(send_text(t.a, "quiet", text));
    snprintf(text, sizeof text, "b%d", i);
    CHECK_OK(send_text(t.b, "quiet", text));
  }
  WAIT_UNTIL(&t.w, ann->logged == 10 && bob->logged == 10, "ten messages at ann and bob");
  waiter_lock(&t.w);
  for (int i = 0; i < 10; i++) CHECK(strcmp(ann->log[i], bob->log[i]) == 0);
  CHECK(cid->logged == 0);
  pthread_mutex_unlock(&t.w.mu);

  messenger_fault_counts f;
  CHECK_OK(messenger_client_fault_counts(t.c, &f));
  CHECK(f.dropped > 0 && f.duplicated == 0);
  trio_stop(&t);
}

static void messages_behind_a_gap_are_lost_when_their_sender_leaves(messenger_order order,
                                                                  const char *group) {
  static trio t;
  /* Every datagram carrying cid's message 1 is dropped, its first sending and every resend. */
  trio_start(&t, group, order, "drop_seq=1", 0);
  WAIT_UNTIL(&t.w, members_of(&t.ann, group) == 3 && members_of(&t.bob, group) == 3,
             "ann and bob to see all three");
  /* Too large to share a datagram: the second arrives and waits behind the first, which
   * never does. */
  char big[1000];
  memset(big, 'x', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  memcpy(big, "first", 5);
  CHECK_OK(send_text(t.c, group, big));
  memcpy(big, "second", 6);
  CHECK_OK(send_text(t.c, group, big));
  /* Leaving waits (up to its leave timeout) for the first message to be stable; it never is. */
  CHECK_OK(messenger_client_leave(t.c, group));
  WAIT_UNTIL(&t.w, t.ann.lost == 1 && t.bob.lost == 1,
             "ann and bob to report cid's message lost");
  waiter_lock(&t.w);
  inbox *both[] = {&t.ann, &t.bob};
  for (int i = 0; i < 2; i++) {
    inbox *in = both[i];
    CHECK(strcmp(in->lost_group, group) == 0);
    CHECK(strstr(in->lost_text, "message 2 of cid") != NULL);
    CHECK(in->logged == 0); /* nothing of cid's is delivered */
  }
  pthread_mutex_unlock(&t.w.mu);
  messenger_fault_counts f;
  CHECK_OK(messenger_client_fault_counts(t.c, &f));
  CHECK(f.dropped >= 1);
  trio_stop(&t);
}

/* The child process: a client "zed" in group "g" that then waits to be frozen. */
static int frozen_client(const char *addr) {
  test_name = "test_departures (frozen client)";
  messenger_client_config *config = NULL;
  messenger_client *client = NULL;
  CHECK_OK(messenger_client_config_new(addr, "zed", &config));
  CHECK_OK(messenger_client_config_set_faults(config, ""));
  CHECK_OK(messenger_client_new(config, &client));
  CHECK_OK(messenger_client_join(client, "g", MESSENGER_ORDER_FIFO, NULL));
  printf("joined\n");
  fflush(stdout);
  /* Until the parent closes our stdin (it kills us first). */
  char c;
  while (read(0, &c, 1) > 0) {
  }
  messenger_client_free(client);
  return 0;
}

static double now_seconds(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void a_frozen_client_is_dropped_after_its_missed_heartbeats(void) {
  enum { INTERVAL_MS = 200, MISSES = 4 };
  messenger_tracker *tracker = NULL;
  char addr[64];
  CHECK_OK(messenger_tracker_new("127.0.0.1:0", NULL, INTERVAL_MS, MISSES, &tracker));
  CHECK_OK(messenger_tracker_address(tracker, addr, sizeof addr, NULL));
  waiter w;
  waiter_init(&w);
  static inbox ann;
  memset(&ann, 0, sizeof ann);
  ann.name = "ann";
  ann.w = &w;
  messenger_client *a = connect_inbox(addr, &ann, "", 0);
  CHECK_OK(messenger_client_join(a, "g", MESSENGER_ORDER_FIFO, NULL));

  /* zed runs in a child process (this program, exec'd), so that it can be frozen. */
  int out[2], in[2];
  CHECK(pipe(out) == 0 && pipe(in) == 0);
  pid_t child = fork();
  CHECK(child >= 0);
  if (child == 0) {
    dup2(in[0], 0);
    dup2(out[1], 1);
    close(in[0]);
    close(in[1]);
    close(out[0]);
    close(out[1]);
    execl("/proc/self/exe", "test_departures", "--frozen-client", addr, (char *)NULL);
    _exit(127);
  }
  close(in[0]);
  close(out[1]);
  struct pollfd pfd = {.fd = out[0], .events = POLLIN};
  CHECK(poll(&pfd, 1, PATIENCE_SECONDS * 1000) == 1);
  char line[16] = {0};
  CHECK(read(out[0], line, sizeof line - 1) > 0);
  CHECK(strncmp(line, "joined", 6) == 0);
  WAIT_UNTIL(&w, members_of(&ann, "g") == 2, "ann to see zed join");

  double frozen_at = now_seconds();
  CHECK(kill(child, SIGSTOP) == 0);
  WAIT_UNTIL(&w, members_of(&ann, "g") == 1 && strcmp(left_of(&ann, "g"), "zed") == 0,
             "ann to see zed dropped");
  double waited = now_seconds() - frozen_at;
  /* zed answered every probe up to the freeze: the tracker counts MISSES probes unanswered,
   * each INTERVAL_MS after the one before, before it drops zed (less the moment a probe sent
   * just before the freeze may have been on its way). Read as microseconds, zed would be
   * dropped at once; read as seconds, not within the wait. */
  fprintf(stderr, "zed dropped %.3f s after it froze\n", waited);
  if (waited < (MISSES * INTERVAL_MS - 50) / 1000.0) {
    fprintf(stderr, "zed dropped after %.3f s, before %d heartbeats of %d ms\n", waited, MISSES,
            INTERVAL_MS);
    CHECK(!"not dropped before its missed heartbeats");
  }
  messenger_tracker_counters stats;
  CHECK_OK(messenger_tracker_stats(tracker, &stats));
  CHECK(stats.clients_dropped == 1);
  CHECK(stats.clients == 1); /* ann answered hers */

  CHECK(kill(child, SIGKILL) == 0);
  int status = 0;
  CHECK(waitpid(child, &status, 0) == child);
  CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  close(in[1]);
  close(out[0]);
  CHECK_OK(messenger_client_quit(a, NULL));
  messenger_client_free(a);
  messenger_tracker_free(tracker);
  waiter_destroy(&w);
}

int main(int argc, char **argv) {
  if (argc == 3 && strcmp(argv[1], "--frozen-client") == 0) return frozen_client(argv[2]);
  test_name = "test_departures";
  a_group_the_new_tracker_refuses();
  a_member_silent_on_the_data_plane_is_removed();
  messages_behind_a_gap_are_lost_when_their_sender_leaves(MESSENGER_ORDER_FIFO, "lossy-fifo");
  messages_behind_a_gap_are_lost_when_their_sender_leaves(MESSENGER_ORDER_TOTAL, "lossy-total");
  a_frozen_client_is_dropped_after_its_missed_heartbeats();
  printf("test_departures: ok\n");
  return 0;
}
