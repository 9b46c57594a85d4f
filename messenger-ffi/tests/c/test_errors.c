/*
 * Every error path returns its code and a message: NULL pointers, invalid arguments, small
 * buffers, the tracker's refusals (unknown group, access policy, names, orders), sending where
 * the client is not, and use after quit or after the tracker stopped. Outputs are untouched on
 * failure.
 */
#include "harness.h" /* first: it sets the POSIX feature level */

#include <unistd.h>

static messenger_client *connect_as(const char *tracker, const char *name) {
  messenger_client_config *config = NULL;
  messenger_client *client = NULL;
  CHECK_OK(messenger_client_config_new(tracker, name, &config));
  CHECK_OK(messenger_client_new(config, &client));
  return client;
}

static void library_basics(void) {
  CHECK(strcmp(messenger_version(), "0.1.0") == 0);
  CHECK(strcmp(messenger_result_name(MESSENGER_OK), "MESSENGER_OK") == 0);
  CHECK(strcmp(messenger_result_name(MESSENGER_UNKNOWN_GROUP), "MESSENGER_UNKNOWN_GROUP") == 0);
  CHECK(strcmp(messenger_result_name(9999), "MESSENGER_UNKNOWN_RESULT") == 0);

  /* The last error: a small buffer is refused, tells the size, and keeps the message. */
  messenger_tracker *tracker = NULL;
  CHECK_FAILS(messenger_tracker_new(NULL, NULL, 0, 0, &tracker), MESSENGER_NULL_ARGUMENT,
              "bind is NULL");
  CHECK(tracker == NULL);
  char small[4] = "abc";
  size_t len = 0;
  CHECK(messenger_last_error(small, sizeof small, &len) == MESSENGER_BUFFER_TOO_SMALL);
  CHECK(len == strlen("bind is NULL"));
  CHECK(strcmp(small, "abc") == 0);
  CHECK(messenger_last_error(NULL, 0, &len) == MESSENGER_BUFFER_TOO_SMALL);
  CHECK(messenger_last_error(NULL, 8, &len) == MESSENGER_NULL_ARGUMENT);
  char buf[64];
  CHECK_OK(messenger_last_error(buf, sizeof buf, &len));
  CHECK(strcmp(buf, "bind is NULL") == 0 && len == 12);

  /* Freeing NULL does nothing. */
  messenger_tracker_free(NULL);
  messenger_client_free(NULL);
  messenger_client_config_free(NULL);
  messenger_group_list_free(NULL);
  messenger_member_list_free(NULL);
  CHECK_FAILS(messenger_metrics_text(NULL, buf, sizeof buf, NULL), MESSENGER_NULL_ARGUMENT,
              "metrics is NULL");
}

/*
 * MESSENGER_FAULTS is read when a client connects, unless the config sets faults: then the
 * environment is ignored. Runs first, while no tracker or client runs that could read the
 * environment as it changes; nothing listens at `dead` (where a tracker listened a moment
 * ago).
 */
static void faults_from_the_environment(void) {
  char dead[64];
  messenger_tracker *t = start_tracker(NULL, dead, sizeof dead);
  messenger_tracker_free(t);
  CHECK(setenv("MESSENGER_FAULTS", "loss=2", 1) == 0);
  messenger_client_config *config = NULL;
  messenger_client *client = NULL;
  CHECK_OK(messenger_client_config_new(dead, "x", &config));
  CHECK_FAILS(messenger_client_new(config, &client), MESSENGER_CONFIG,
              "invalid fault specification \"loss=2\"");
  CHECK_OK(messenger_client_config_new(dead, "x", &config));
  CHECK_OK(messenger_client_config_set_faults(config, ""));
  /* Past the faults: it tries the tracker, which is not there. */
  CHECK_FAILS(messenger_client_new(config, &client), MESSENGER_TRACKER_UNAVAILABLE,
              "tracker unavailable");
  CHECK(client == NULL);
  CHECK(unsetenv("MESSENGER_FAULTS") == 0);
}

static void tracker_errors(void) {
  messenger_tracker *tracker = NULL;
  CHECK_FAILS(messenger_tracker_new("127.0.0.1:0", NULL, 0, 0, NULL), MESSENGER_NULL_ARGUMENT,
              "tracker_out is NULL");
  CHECK_FAILS(messenger_tracker_new("nowhere", NULL, 0, 0, &tracker), MESSENGER_INVALID_ARGUMENT,
              "\"nowhere\"");
  const char bad_utf8[] = {'\xff', ':', '1', '\0'};
  CHECK_FAILS(messenger_tracker_new(bad_utf8, NULL, 0, 0, &tracker), MESSENGER_INVALID_ARGUMENT,
              "not valid UTF-8");
  CHECK_FAILS(messenger_tracker_new("127.0.0.1:0", "/nonexistent/policy.toml", 0, 0, &tracker),
              MESSENGER_IO, "policy.toml");
  const char *bad_policy = write_policy("[[group]]\nmax_members = 2\n");
  CHECK_FAILS(messenger_tracker_new("127.0.0.1:0", bad_policy, 0, 0, &tracker), MESSENGER_CONFIG,
              "invalid policy file");
  unlink(bad_policy);
  CHECK(tracker == NULL);

  char addr[64];
  tracker = start_tracker(NULL, addr, sizeof addr);
  messenger_tracker *second = NULL;
  CHECK_FAILS(messenger_tracker_new(addr, NULL, 0, 0, &second), MESSENGER_IO, "cannot listen on");
  CHECK(second == NULL);

  char tiny[8] = "unset";
  size_t needed = 0;
  CHECK_FAILS(messenger_tracker_address(tracker, tiny, sizeof tiny, &needed),
              MESSENGER_BUFFER_TOO_SMALL, "too small");
  CHECK(needed == strlen(addr) && strcmp(tiny, "unset") == 0);
  CHECK_FAILS(messenger_tracker_address(NULL, addr, sizeof addr, NULL), MESSENGER_NULL_ARGUMENT,
              "tracker is NULL");
  CHECK_FAILS(messenger_tracker_stats(tracker, NULL), MESSENGER_NULL_ARGUMENT,
              "stats_out is NULL");

  CHECK_OK(messenger_tracker_stop(tracker));
  CHECK_FAILS(messenger_tracker_stop(tracker), MESSENGER_CLOSED, "already stopped");
  messenger_tracker_counters stats = {.clients = 77};
  CHECK_FAILS(messenger_tracker_stats(tracker, &stats), MESSENGER_CLOSED, "stopped");
  CHECK(stats.clients == 77);
  char again[64];
  CHECK_OK(messenger_tracker_address(tracker, again, sizeof again, NULL));
  CHECK(strcmp(again, addr) == 0);
  messenger_tracker_free(tracker);

  /* Nothing listens there now. */
  messenger_client_config *config = NULL;
  messenger_client *client = NULL;
  CHECK_OK(messenger_client_config_new(addr, "nobody", &config));
  CHECK_FAILS(messenger_client_new(config, &client), MESSENGER_TRACKER_UNAVAILABLE,
              "tracker unavailable");
  CHECK(client == NULL);
}

static void config_errors(const char *addr) {
  static const char bad_utf8_spec[] = {'l', 'o', 's', 's', '=', '\xff', '\0'};
  messenger_client_config *config = NULL;
  CHECK_FAILS(messenger_client_config_new(NULL, "x", &config), MESSENGER_NULL_ARGUMENT,
              "tracker is NULL");
  CHECK_FAILS(messenger_client_config_new(addr, NULL, &config), MESSENGER_NULL_ARGUMENT,
              "username is NULL");
  CHECK_FAILS(messenger_client_config_new(addr, "x", NULL), MESSENGER_NULL_ARGUMENT,
              "config_out is NULL");
  CHECK_FAILS(messenger_client_config_new("127.0.0.1", "x", &config), MESSENGER_INVALID_ARGUMENT,
              "tracker address");
  CHECK(config == NULL);

  CHECK_OK(messenger_client_config_new(addr, "x", &config));
  CHECK_FAILS(messenger_client_config_set_udp_bind(config, "here"), MESSENGER_INVALID_ARGUMENT,
              "UDP bind address");
  CHECK_FAILS(messenger_client_config_set_udp_bind(NULL, "127.0.0.1:0"), MESSENGER_NULL_ARGUMENT,
              "config is NULL");
  CHECK_FAILS(messenger_client_config_on_message(config, NULL, NULL, NULL),
              MESSENGER_NULL_ARGUMENT, "callback is NULL");
  /* The window: at least 1, at most MESSENGER_MAX_WINDOW. */
  CHECK_FAILS(messenger_client_config_set_window(config, 0), MESSENGER_INVALID_ARGUMENT,
              "window 0 is not between 1 and 65536");
  CHECK_FAILS(messenger_client_config_set_window(config, MESSENGER_MAX_WINDOW + 1),
              MESSENGER_INVALID_ARGUMENT, "window 65537");
  CHECK_FAILS(messenger_client_config_set_window(NULL, 16), MESSENGER_NULL_ARGUMENT,
              "config is NULL");
  CHECK_OK(messenger_client_config_set_window(config, 1));
  CHECK_OK(messenger_client_config_set_window(config, MESSENGER_MAX_WINDOW));
  CHECK_FAILS(messenger_client_config_set_suspect_timeout_ms(config, 0),
              MESSENGER_INVALID_ARGUMENT, "suspect timeout of 0 ms");
  CHECK_FAILS(messenger_client_config_set_suspect_timeout_ms(NULL, 300),
              MESSENGER_NULL_ARGUMENT, "config is NULL");
  CHECK_OK(messenger_client_config_set_suspect_timeout_ms(config, 300));
  /* Fault specs: what is wrong is said. */
  CHECK_FAILS(messenger_client_config_set_faults(config, "loss=2"), MESSENGER_CONFIG,
              "loss=2 is not a probability in [0, 1]");
  CHECK_FAILS(messenger_client_config_set_faults(config, "jitter=1"), MESSENGER_CONFIG,
              "unknown key `jitter`");
  CHECK_FAILS(messenger_client_config_set_faults(config, "loss"), MESSENGER_CONFIG,
              "`loss` is not key=value");
  CHECK_FAILS(messenger_client_config_set_faults(config, NULL), MESSENGER_NULL_ARGUMENT,
              "spec is NULL");
  CHECK_FAILS(messenger_client_config_set_faults(config, bad_utf8_spec),
              MESSENGER_INVALID_ARGUMENT, "spec is not valid UTF-8");
  CHECK_OK(messenger_client_config_set_faults(config, "loss=0.5, seed=3"));
  CHECK_OK(messenger_client_config_set_faults(config, ""));
  messenger_client_config_free(config);

  messenger_client *client = NULL;
  CHECK_FAILS(messenger_client_new(NULL, &client), MESSENGER_NULL_ARGUMENT, "config is NULL");
  CHECK_OK(messenger_client_config_new(addr, "x", &config));
  CHECK_FAILS(messenger_client_new(config, NULL), MESSENGER_NULL_ARGUMENT, "client_out is NULL");

  /* The tracker's checks of names. */
  CHECK_OK(messenger_client_config_new(addr, "two words", &config));
  CHECK_FAILS(messenger_client_new(config, &client), MESSENGER_INVALID_NAME, "two words");
  CHECK_OK(messenger_client_config_new(addr, "", &config));
  CHECK_FAILS(messenger_client_new(config, &client), MESSENGER_INVALID_NAME, "empty");
  messenger_client *first = connect_as(addr, "dup");
  CHECK_OK(messenger_client_config_new(addr, "dup", &config));
  CHECK_FAILS(messenger_client_new(config, &client), MESSENGER_USERNAME_TAKEN, "dup");
  CHECK(client == NULL);
  /* A UDP address in use. */
  char udp[64];
  CHECK_OK(messenger_client_udp_address(first, udp, sizeof udp, NULL));
  CHECK_OK(messenger_client_config_new(addr, "second", &config));
  CHECK_OK(messenger_client_config_set_udp_bind(config, udp));
  CHECK_FAILS(messenger_client_new(config, &client), MESSENGER_IO, "i/o error");
  messenger_client_free(first);
}

static void client_errors(const char *addr) {
  messenger_client *ann = connect_as(addr, "ann");
  messenger_client *ben = connect_as(addr, "ben");
  const char *hello = "hello";
  const uint8_t *bytes = (const uint8_t *)hello;

  /* NULL pointers and invalid arguments. */
  CHECK_FAILS(messenger_client_join(NULL, "g", MESSENGER_ORDER_FIFO, NULL),
              MESSENGER_NULL_ARGUMENT, "client is NULL");
  CHECK_FAILS(messenger_client_join(ann, NULL, MESSENGER_ORDER_FIFO, NULL),
              MESSENGER_NULL_ARGUMENT, "group is NULL");
  CHECK_FAILS(messenger_client_join(ann, "g", 7, NULL), MESSENGER_INVALID_ARGUMENT, "order 7");
  const char bad_utf8[] = {'g', '\xc3', '\0'};
  CHECK_FAILS(messenger_client_join(ann, bad_utf8, MESSENGER_ORDER_FIFO, NULL),
              MESSENGER_INVALID_ARGUMENT, "group is not valid UTF-8");
  CHECK_FAILS(messenger_client_send(ann, "g", NULL, 3, NULL), MESSENGER_NULL_ARGUMENT,
              "bytes is NULL");
  CHECK_FAILS(messenger_client_groups(ann, NULL), MESSENGER_NULL_ARGUMENT, "list_out is NULL");
  CHECK_FAILS(messenger_client_members(ann, "g", NULL), MESSENGER_NULL_ARGUMENT,
              "list_out is NULL");
  CHECK_FAILS(messenger_client_metrics(ann, NULL), MESSENGER_NULL_ARGUMENT,
              "metrics_out is NULL");
  CHECK_FAILS(messenger_client_fault_counts(ann, NULL), MESSENGER_NULL_ARGUMENT,
              "counts_out is NULL");
  messenger_fault_counts counts = {.dropped = 5};
  CHECK_FAILS(messenger_client_fault_counts(NULL, &counts), MESSENGER_NULL_ARGUMENT,
              "client is NULL");
  CHECK(counts.dropped == 5);
  CHECK_FAILS(messenger_client_leave(NULL, "g"), MESSENGER_NULL_ARGUMENT, "client is NULL");
  CHECK_FAILS(messenger_client_flush(NULL, 10), MESSENGER_NULL_ARGUMENT, "client is NULL");
  CHECK_FAILS(messenger_client_quit(NULL, NULL), MESSENGER_NULL_ARGUMENT, "client is NULL");

  /* The tracker's refusals. */
  messenger_member_list members = {.len = 99};
  CHECK_FAILS(messenger_client_members(ann, "nosuch", &members), MESSENGER_UNKNOWN_GROUP,
              "nosuch");
  CHECK(members.len == 99 && members.members == NULL);
  CHECK_FAILS(messenger_client_leave(ann, "nosuch"), MESSENGER_UNKNOWN_GROUP, "nosuch");
  CHECK_FAILS(messenger_client_join(ann, "bad group", MESSENGER_ORDER_FIFO, NULL),
              MESSENGER_INVALID_NAME, "bad group");
  CHECK_OK(messenger_client_join(ann, "g", MESSENGER_ORDER_TOTAL, NULL));
  CHECK_FAILS(messenger_client_join(ann, "g", MESSENGER_ORDER_TOTAL, NULL),
              MESSENGER_ALREADY_MEMBER, "g");
  CHECK_FAILS(messenger_client_join(ben, "g", MESSENGER_ORDER_FIFO, NULL),
              MESSENGER_ORDER_MISMATCH, "g");
  CHECK_FAILS(messenger_client_leave(ben, "g"), MESSENGER_NOT_A_MEMBER, "g");

  /* Sending where the client is not, or too much. */
  uint64_t seq = 12345;
  CHECK_FAILS(messenger_client_send(ben, "g", bytes, 5, &seq), MESSENGER_NOT_JOINED, "g");
  CHECK(seq == 12345);
  static uint8_t big[1201];
  CHECK_FAILS(messenger_client_send(ann, "g", big, sizeof big, &seq), MESSENGER_TOO_LARGE,
              "1201 bytes");
  CHECK_OK(messenger_client_send(ann, "g", big, 1200, &seq));
  CHECK(seq == 1);
  CHECK_OK(messenger_client_send(ann, "g", NULL, 0, &seq)); /* an empty message is a message */
  CHECK(seq == 2);

  /* Use after quit: every call says the client is closed. */
  messenger_metrics final_metrics;
  CHECK_OK(messenger_client_quit(ann, &final_metrics));
  CHECK(final_metrics.sent == 2);
  CHECK_FAILS(messenger_client_join(ann, "h", MESSENGER_ORDER_FIFO, NULL), MESSENGER_CLOSED,
              "closed");
  CHECK_FAILS(messenger_client_send(ann, "g", bytes, 5, NULL), MESSENGER_CLOSED, "closed");
  CHECK_FAILS(messenger_client_leave(ann, "g"), MESSENGER_CLOSED, "closed");
  CHECK_FAILS(messenger_client_flush(ann, 100), MESSENGER_CLOSED, "closed");
  messenger_group_list groups = {.len = 42};
  CHECK_FAILS(messenger_client_groups(ann, &groups), MESSENGER_CLOSED, "closed");
  CHECK(groups.len == 42);
  CHECK_FAILS(messenger_client_members(ann, "g", &members), MESSENGER_CLOSED, "closed");
  messenger_tracker_counters counters;
  CHECK_FAILS(messenger_client_tracker_stats(ann, &counters), MESSENGER_CLOSED, "closed");
  CHECK_FAILS(messenger_client_quit(ann, NULL), MESSENGER_CLOSED, "closed");
  messenger_metrics after;
  CHECK_OK(messenger_client_metrics(ann, &after)); /* the final metrics stay readable */
  CHECK(after.sent == 2);
  messenger_client_free(ann);

  /* The tracker saw the refusals. */
  CHECK_OK(messenger_client_tracker_stats(ben, &counters));
  CHECK(counters.errors >= 6);
  messenger_client_free(ben);
}

static void policy_errors(void) {
  const char *policy = write_policy("[[group]]\n"
                                    "name = \"ops\"\n"
                                    "password = \"s3cret\"\n"
                                    "[[group]]\n"
                                    "name = \"duo\"\n"
                                    "max_members = 1\n"
                                    "[[group]]\n"
                                    "pattern = \"team-*\"\n"
                                    "create = false\n");
  char addr[64];
  messenger_tracker *tracker = start_tracker(policy, addr, sizeof addr);
  unlink(policy);
  messenger_client *cy = connect_as(addr, "cy");
  messenger_client *di = connect_as(addr, "di");
  CHECK_FAILS(messenger_client_join(cy, "ops", MESSENGER_ORDER_FIFO, NULL),
              MESSENGER_ACCESS_DENIED, "ops");
  CHECK_FAILS(messenger_client_join(cy, "ops", MESSENGER_ORDER_FIFO, "guess"),
              MESSENGER_ACCESS_DENIED, "ops");
  CHECK_OK(messenger_client_join(cy, "ops", MESSENGER_ORDER_FIFO, "s3cret"));
  CHECK_OK(messenger_client_join(cy, "duo", MESSENGER_ORDER_FIFO, NULL));
  CHECK_FAILS(messenger_client_join(di, "duo", MESSENGER_ORDER_FIFO, NULL),
              MESSENGER_GROUP_FULL, "duo");
  CHECK_FAILS(messenger_client_join(di, "team-a", MESSENGER_ORDER_FIFO, NULL),
              MESSENGER_ACCESS_DENIED, "team-a");
  CHECK_OK(messenger_client_quit(cy, NULL));
  CHECK_OK(messenger_client_quit(di, NULL));
  messenger_client_free(cy);
  messenger_client_free(di);
  messenger_tracker_free(tracker);
}

/* The tracker over TLS: its fingerprint pins it, a wrong pin is refused, a client trusting on
 * first use records it in the known-trackers file it was given; an insecure client at a TLS
 * tracker and a TLS client at an insecure tracker are refused clearly; an insecure pair talks. */
static void tls_settings(void) {
  char dir[] = "/tmp/messenger-test-tls-XXXXXX";
  CHECK(mkdtemp(dir) != NULL);
  messenger_tracker *tracker = NULL;
  CHECK_OK(messenger_tracker_new_with_tls("127.0.0.1:0", NULL, 0, 0, dir, false, &tracker));
  char addr[64], fingerprint[128], known[128];
  size_t len = 0;
  CHECK_OK(messenger_tracker_address(tracker, addr, sizeof addr, NULL));
  CHECK_OK(messenger_tracker_fingerprint(tracker, fingerprint, sizeof fingerprint, &len));
  CHECK(len == 95 && strlen(fingerprint) == 95);
  snprintf(known, sizeof known, "%s/known_trackers", dir);

  messenger_client_config *config = NULL;
  messenger_client *client = NULL;
  CHECK_OK(messenger_client_config_new(addr, "pinned", &config));
  CHECK_FAILS(messenger_client_config_set_tracker_fingerprint(config, "nonsense"),
              MESSENGER_INVALID_ARGUMENT, "fingerprint");
  CHECK_OK(messenger_client_config_set_tracker_fingerprint(config, fingerprint));
  CHECK_OK(messenger_client_new(config, &client));
  messenger_client_free(client);

  const char *wrong = "AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:"
                      "AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB";
  CHECK_OK(messenger_client_config_new(addr, "wrong", &config));
  CHECK_OK(messenger_client_config_set_tracker_fingerprint(config, wrong));
  client = NULL;
  CHECK_FAILS(messenger_client_new(config, &client), MESSENGER_TRACKER_NOT_TRUSTED,
              "not the pinned");
  CHECK(client == NULL);

  CHECK_OK(messenger_client_config_new(addr, "first", &config));
  CHECK_OK(messenger_client_config_set_known_trackers_file(config, known));
  CHECK_OK(messenger_client_new(config, &client));
  messenger_client_free(client);
  CHECK(access(known, R_OK) == 0);

  CHECK_OK(messenger_client_config_new(addr, "plain", &config));
  CHECK_OK(messenger_client_config_set_insecure(config, true));
  client = NULL;
  CHECK_FAILS(messenger_client_new(config, &client), MESSENGER_BAD_REQUEST, "requires TLS");
  messenger_tracker_free(tracker);

  CHECK_OK(messenger_tracker_new_with_tls("127.0.0.1:0", NULL, 0, 0, NULL, true, &tracker));
  CHECK_OK(messenger_tracker_address(tracker, addr, sizeof addr, NULL));
  CHECK_OK(messenger_tracker_fingerprint(tracker, fingerprint, sizeof fingerprint, &len));
  CHECK(len == 0 && fingerprint[0] == '\0');
  CHECK_OK(messenger_client_config_new(addr, "tls", &config));
  CHECK_OK(messenger_client_config_set_known_trackers_file(config, known));
  CHECK_FAILS(messenger_client_new(config, &client), MESSENGER_TRACKER_NOT_TRUSTED,
              "does not speak TLS");
  CHECK_OK(messenger_client_config_new(addr, "plain", &config));
  CHECK_OK(messenger_client_config_set_insecure(config, true));
  CHECK_OK(messenger_client_new(config, &client));
  messenger_client_free(client);
  messenger_tracker_free(tracker);
}

int main(void) {
  test_name = "test_errors";
  faults_from_the_environment();
  library_basics();
  tracker_errors();
  char addr[64];
  messenger_tracker *tracker = start_tracker(NULL, addr, sizeof addr);
  config_errors(addr);
  client_errors(addr);
  messenger_tracker_free(tracker);
  policy_errors();
  tls_settings();
  printf("test_errors: ok\n");
  return 0;
}
