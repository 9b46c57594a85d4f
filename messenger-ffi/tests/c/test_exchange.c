/*
 * A tracker and two clients in one process: both join a total-order group and a FIFO group,
 * send at the same time from two threads, and get every message exactly once: in the same
 * order at both in the total-order group, in each sender's order in the FIFO group. Then the
 * lists, counters and metrics, quit and free, and each userdata freed exactly once.
 */
#include "harness.h"

#define N 100
#define TOTAL_GROUP "t"
#define FIFO_GROUP "f"

typedef struct peer {
  /* First: count_free, the free function of the peer's userdata, reads it. */
  free_counter frees;
  const char *name;
  messenger_client *client;
  waiter *w;
  /* Deliveries in the total-order group, as "sender:text", in delivery order. */
  char total_log[2 * N][96];
  int total_len;
  /* FIFO group: how many messages of each sender (by name) arrived, and whether in order. */
  int fifo_from_alice, fifo_from_bob;
  int fifo_out_of_order;
  int members_in[2]; /* members in the last view of t and f */
} peer;

static void on_message(void *userdata, const char *group, const char *sender,
                       const uint8_t *bytes, size_t len, uint64_t seq) {
  peer *p = userdata;
  char text[48];
  copy_text(text, sizeof text, bytes, len);
  waiter_lock(p->w);
  if (strcmp(group, TOTAL_GROUP) == 0 && p->total_len < 2 * N) {
    snprintf(p->total_log[p->total_len++], sizeof p->total_log[0], "%s:%s", sender, text);
  } else if (strcmp(group, FIFO_GROUP) == 0) {
    int *count = strcmp(sender, "alice") == 0 ? &p->fifo_from_alice : &p->fifo_from_bob;
    char expected[48];
    snprintf(expected, sizeof expected, "%s-%d", sender, *count + 1);
    if (strcmp(text, expected) != 0 || seq != (uint64_t)(*count + 1)) p->fifo_out_of_order++;
    (*count)++;
  }
  waiter_signal(p->w);
}

static void on_view(void *userdata, const messenger_view *view) {
  peer *p = userdata;
  waiter_lock(p->w);
  int slot = strcmp(view->group, TOTAL_GROUP) == 0 ? 0 : 1;
  p->members_in[slot] = (int)view->members_len;
  waiter_signal(p->w);
}

static void on_event(void *userdata, messenger_event_kind kind, const char *group,
                     const char *text) {
  peer *p = userdata;
  fprintf(stderr, "%s: event %u (%s): %s\n", p->name, (unsigned)kind, group ? group : "-", text);
}

static void connect_peer(peer *p, const char *tracker) {
  messenger_client_config *config = NULL;
  CHECK_OK(messenger_client_config_new(tracker, p->name, &config));
  CHECK_OK(messenger_client_config_set_udp_bind(config, "127.0.0.1:0"));
  /* One userdata for the three callbacks (they never run at the same time), with a free
   * function registered for each: it must be called three times, once per registration. */
  CHECK_OK(messenger_client_config_on_message(config, on_message, p, count_free));
  CHECK_OK(messenger_client_config_on_view(config, on_view, p, count_free));
  CHECK_OK(messenger_client_config_on_event(config, on_event, p, count_free));
  CHECK_OK(messenger_client_new(config, &p->client));
}

static void peer_init(peer *p, const char *name, waiter *w) {
  memset(p, 0, sizeof *p);
  p->name = name;
  p->w = w;
  p->frees.w = w;
}

static void *send_all(void *arg) {
  peer *p = arg;
  char text[48];
  for (int i = 1; i <= N; i++) {
    int n = snprintf(text, sizeof text, "%s-%d", p->name, i);
    uint64_t seq = 0;
    CHECK_OK(messenger_client_send(p->client, TOTAL_GROUP, (const uint8_t *)text, (size_t)n, &seq));
    CHECK(seq == (uint64_t)i);
    CHECK_OK(messenger_client_send(p->client, FIFO_GROUP, (const uint8_t *)text, (size_t)n, NULL));
  }
  return NULL;
}

int main(void) {
  test_name = "test_exchange";
  waiter w;
  waiter_init(&w);
  char addr[64];
  messenger_tracker *tracker = start_tracker(NULL, addr, sizeof addr);

  static peer alice, bob;
  peer_init(&alice, "alice", &w);
  peer_init(&bob, "bob", &w);
  connect_peer(&alice, addr);
  connect_peer(&bob, addr);

  CHECK_OK(messenger_client_join(alice.client, TOTAL_GROUP, MESSENGER_ORDER_TOTAL, NULL));
  CHECK_OK(messenger_client_join(alice.client, FIFO_GROUP, MESSENGER_ORDER_FIFO, NULL));
  CHECK_OK(messenger_client_join(bob.client, TOTAL_GROUP, MESSENGER_ORDER_TOTAL, NULL));
  CHECK_OK(messenger_client_join(bob.client, FIFO_GROUP, MESSENGER_ORDER_FIFO, NULL));
  WAIT_UNTIL(&w,
             alice.members_in[0] == 2 && alice.members_in[1] == 2 && bob.members_in[0] == 2 &&
                 bob.members_in[1] == 2,
             "both clients to see both in both groups");

  pthread_t ta, tb;
  CHECK(pthread_create(&ta, NULL, send_all, &alice) == 0);
  CHECK(pthread_create(&tb, NULL, send_all, &bob) == 0);
  CHECK(pthread_join(ta, NULL) == 0);
  CHECK(pthread_join(tb, NULL) == 0);

  WAIT_UNTIL(&w,
             alice.total_len == 2 * N && bob.total_len == 2 * N &&
                 alice.fifo_from_alice == N && alice.fifo_from_bob == N &&
                 bob.fifo_from_alice == N && bob.fifo_from_bob == N,
             "every message at both clients");
  for (int i = 0; i < 2 * N; i++) {
    if (strcmp(alice.total_log[i], bob.total_log[i]) != 0) {
      fprintf(stderr, "total order differs at %d: alice got %s, bob got %s\n", i,
              alice.total_log[i], bob.total_log[i]);
      CHECK(!"identical logs in the total-order group");
    }
  }
  CHECK(alice.fifo_out_of_order == 0 && bob.fifo_out_of_order == 0);

  /* Lists and counters. */
  messenger_group_list groups;
  CHECK_OK(messenger_client_groups(alice.client, &groups));
  CHECK(groups.len == 2);
  int seen = 0;
  for (size_t i = 0; i < groups.len; i++) {
    const messenger_group *g = &groups.groups[i];
    CHECK(g->members == 2);
    if (strcmp(g->name, TOTAL_GROUP) == 0 && g->order == MESSENGER_ORDER_TOTAL) seen |= 1;
    if (strcmp(g->name, FIFO_GROUP) == 0 && g->order == MESSENGER_ORDER_FIFO) seen |= 2;
  }
  CHECK(seen == 3);
  messenger_group_list_free(&groups);
  CHECK(groups.groups == NULL && groups.len == 0);
  messenger_group_list_free(&groups); /* twice is harmless */

  messenger_member_list members;
  CHECK_OK(messenger_client_members(bob.client, TOTAL_GROUP, &members));
  CHECK(members.len == 2 && members.order == MESSENGER_ORDER_TOTAL && members.view_id >= 2);
  char bob_udp[64];
  CHECK_OK(messenger_client_udp_address(bob.client, bob_udp, sizeof bob_udp, NULL));
  int found_bob = 0;
  for (size_t i = 0; i < members.len; i++) {
    if (strcmp(members.members[i].name, "bob") == 0) {
      found_bob = 1;
      CHECK(strcmp(members.members[i].address, bob_udp) == 0);
    }
  }
  CHECK(found_bob);
  messenger_member_list_free(&members);

  messenger_tracker_counters stats;
  CHECK_OK(messenger_tracker_stats(tracker, &stats));
  CHECK(stats.clients == 2 && stats.groups == 2 && stats.memberships == 4);
  messenger_tracker_counters seen_by_client;
  CHECK_OK(messenger_client_tracker_stats(alice.client, &seen_by_client));
  CHECK(seen_by_client.clients == 2 && seen_by_client.groups == 2);

  CHECK_OK(messenger_client_flush(alice.client, 10000));
  messenger_metrics metrics;
  CHECK_OK(messenger_client_metrics(alice.client, &metrics));
  CHECK(metrics.sent == 2 * N);
  CHECK(metrics.received == 2 * N);
  CHECK(metrics.total == 4 * N);

  /* No free function runs while the client runs; quit runs each once. */
  CHECK(freed_count(&alice.frees) == 0);
  messenger_metrics final_alice, final_bob;
  CHECK_OK(messenger_client_quit(alice.client, &final_alice));
  CHECK(freed_count(&alice.frees) == 3);
  CHECK_OK(messenger_client_quit(bob.client, &final_bob));
  CHECK(final_alice.sent == 2 * N && final_bob.received == 2 * N);
  char block[512];
  CHECK_OK(messenger_metrics_text(&final_alice, block, sizeof block, NULL));
  CHECK(strncmp(block, "-----Performance analytics -----\n", 33) == 0);
  CHECK(strstr(block, "Messages sent = 200 / Messages received = 200 / Total messages = 400"));

  messenger_client_free(alice.client);
  messenger_client_free(bob.client);
  CHECK(freed_count(&alice.frees) == 3);
  CHECK(freed_count(&bob.frees) == 3);

  messenger_tracker_free(tracker);
  waiter_destroy(&w);
  printf("test_exchange: ok (%d messages in each group, identical total order)\n", 2 * N);
  return 0;
}
