/*
 * Three clients, a FIFO and a total-order group, each client sending from its own thread:
 *
 * - with a send window of 16 and 2,000 messages per sender and group, every sender fills its
 *   window and waits for room again and again (metrics.window_waits >= 10 for each): a lost
 *   wake-up would hang a sender, which fails the test at the deadline;
 * - under injected faults (loss=0.1,dup=0.05,reorder=0.2), each client's fault counts show
 *   drops, duplicates and delays, while a clean run's are all zero.
 *
 * In both, every message is delivered exactly once to every member, each sender's messages in
 * the order it sent them, and the total-order group's log is the same at every member.
 */
#include "harness.h"

#define PEERS 3
#define MAX_PER_SENDER 2000
#define FIFO_GROUP "fifo"
#define TOTAL_GROUP "total"

static const char *NAMES[PEERS] = {"ann", "bob", "cid"};

typedef struct peer {
  int index;
  messenger_client *client;
  waiter *w;
  /* What was delivered, per group (0 FIFO, 1 total) and sender. */
  uint64_t delivered[2][PEERS];
  /* The total-order group's deliveries in order: sender * 1,000,000 + seq. */
  uint32_t total_log[PEERS * MAX_PER_SENDER];
  size_t total_len;
  /* Deliveries that were not the next of their sender, or with a wrong payload. */
  int wrong;
  char first_wrong[160];
  int members[2];
} peer;

typedef struct run {
  uint64_t window; /* 0: the default */
  const char *faults;
  uint64_t per_sender;
} run;

static int sender_index(const char *name) {
  for (int i = 0; i < PEERS; i++) {
    if (strcmp(NAMES[i], name) == 0) return i;
  }
  return -1;
}

static void on_message(void *userdata, const char *group, const char *sender,
                       const uint8_t *bytes, size_t len, uint64_t seq) {
  peer *p = userdata;
  int g = strcmp(group, TOTAL_GROUP) == 0;
  int s = sender_index(sender);
  char text[64], expected[64];
  copy_text(text, sizeof text, bytes, len);
  waiter_lock(p->w);
  if (s < 0) {
    p->wrong++;
  } else {
    uint64_t next = p->delivered[g][s] + 1;
    snprintf(expected, sizeof expected, "%s-%s-%llu", sender, group, (unsigned long long)next);
    if (seq != next || strcmp(text, expected) != 0) {
      if (p->wrong++ == 0) {
        snprintf(p->first_wrong, sizeof p->first_wrong, "%s got %s#%llu \"%s\", expected \"%s\"",
                 NAMES[p->index], sender, (unsigned long long)seq, text, expected);
      }
    }
    p->delivered[g][s]++;
    if (g && p->total_len < sizeof p->total_log / sizeof p->total_log[0]) {
      p->total_log[p->total_len++] = (uint32_t)s * 1000000u + (uint32_t)seq;
    }
  }
  waiter_signal(p->w);
}

static void on_view(void *userdata, const messenger_view *view) {
  peer *p = userdata;
  waiter_lock(p->w);
  p->members[strcmp(view->group, TOTAL_GROUP) == 0] = (int)view->members_len;
  waiter_signal(p->w);
}

static uint64_t sends_per_sender;

static void *send_all(void *arg) {
  peer *p = arg;
  char text[64];
  for (uint64_t i = 1; i <= sends_per_sender; i++) {
    const char *groups[2] = {FIFO_GROUP, TOTAL_GROUP};
    for (int g = 0; g < 2; g++) {
      int n = snprintf(text, sizeof text, "%s-%s-%llu", NAMES[p->index], groups[g],
                       (unsigned long long)i);
      uint64_t seq = 0;
      CHECK_OK(messenger_client_send(p->client, groups[g], (const uint8_t *)text, (size_t)n,
                                     &seq));
      CHECK(seq == i);
    }
  }
  return NULL;
}

static int all_delivered(peer *peers, uint64_t n) {
  for (int i = 0; i < PEERS; i++) {
    for (int g = 0; g < 2; g++) {
      for (int s = 0; s < PEERS; s++) {
        if (peers[i].delivered[g][s] < n) return 0;
      }
    }
  }
  return 1;
}

static void exchange(run r) {
  waiter w;
  waiter_init(&w);
  char addr[64];
  messenger_tracker *tracker = start_tracker(NULL, addr, sizeof addr);
  static peer peers[PEERS];
  memset(peers, 0, sizeof peers);
  for (int i = 0; i < PEERS; i++) {
    peer *p = &peers[i];
    p->index = i;
    p->w = &w;
    messenger_client_config *config = NULL;
    CHECK_OK(messenger_client_config_new(addr, NAMES[i], &config));
    if (r.window) CHECK_OK(messenger_client_config_set_window(config, r.window));
    /* Set in every run: "" is no faults, whatever MESSENGER_FAULTS says. */
    CHECK_OK(messenger_client_config_set_faults(config, r.faults));
    CHECK_OK(messenger_client_config_on_message(config, on_message, p, NULL));
    CHECK_OK(messenger_client_config_on_view(config, on_view, p, NULL));
    CHECK_OK(messenger_client_new(config, &p->client));
  }
  for (int i = 0; i < PEERS; i++) {
    CHECK_OK(messenger_client_join(peers[i].client, FIFO_GROUP, MESSENGER_ORDER_FIFO, NULL));
    CHECK_OK(messenger_client_join(peers[i].client, TOTAL_GROUP, MESSENGER_ORDER_TOTAL, NULL));
  }
  /* A sender must see every member before it sends: messages sent before are not for them. */
  WAIT_UNTIL(&w,
             peers[0].members[0] == PEERS && peers[0].members[1] == PEERS &&
                 peers[1].members[0] == PEERS && peers[1].members[1] == PEERS &&
                 peers[2].members[0] == PEERS && peers[2].members[1] == PEERS,
             "every client to see every member in both groups");

  sends_per_sender = r.per_sender;
  pthread_t threads[PEERS];
  for (int i = 0; i < PEERS; i++) {
    CHECK(pthread_create(&threads[i], NULL, send_all, &peers[i]) == 0);
  }
  for (int i = 0; i < PEERS; i++) CHECK(pthread_join(threads[i], NULL) == 0);
  WAIT_UNTIL(&w, all_delivered(peers, r.per_sender), "every message at every client");

  waiter_lock(&w);
  for (int i = 0; i < PEERS; i++) {
    peer *p = &peers[i];
    if (p->wrong) {
      fprintf(stderr, "%d deliveries out of order or wrong; the first: %s\n", p->wrong,
              p->first_wrong);
      CHECK(!"each sender's messages exactly once and in order");
    }
    for (int g = 0; g < 2; g++) {
      for (int s = 0; s < PEERS; s++) CHECK(p->delivered[g][s] == r.per_sender);
    }
    CHECK(p->total_len == PEERS * r.per_sender);
    for (size_t k = 0; k < p->total_len; k++) {
      if (p->total_log[k] != peers[0].total_log[k]) {
        fprintf(stderr, "total order differs at %zu: %s has %u, ann has %u\n", k, NAMES[i],
                p->total_log[k], peers[0].total_log[k]);
        CHECK(!"the same total order at every member");
      }
    }
  }
  pthread_mutex_unlock(&w.mu);

  for (int i = 0; i < PEERS; i++) {
    peer *p = &peers[i];
    messenger_metrics m;
    CHECK_OK(messenger_client_metrics(p->client, &m));
    CHECK(m.sent == 2 * r.per_sender);
    CHECK(m.received == 2 * (PEERS - 1) * r.per_sender);
    if (r.window && r.window * 10 <= r.per_sender) {
      /* Each sender sends as fast as the calls return: a window much smaller than what it
       * sends is full long before the first acknowledgement comes back. */
      if (m.window_waits < 10) {
        fprintf(stderr, "%s: the window filled only %llu times\n", NAMES[i],
                (unsigned long long)m.window_waits);
        CHECK(!"every sender waits on its full window again and again");
      }
    }
    messenger_fault_counts f;
    CHECK_OK(messenger_client_fault_counts(p->client, &f));
    if (r.faults[0] != '\0') {
      if (f.dropped == 0 || f.duplicated == 0 || f.delayed == 0) {
        fprintf(stderr, "%s: dropped %llu, duplicated %llu, delayed %llu\n", NAMES[i],
                (unsigned long long)f.dropped, (unsigned long long)f.duplicated,
                (unsigned long long)f.delayed);
        CHECK(!"faults happened at every client");
      }
    } else {
      CHECK(f.dropped == 0 && f.duplicated == 0 && f.delayed == 0);
    }
    CHECK_OK(messenger_client_quit(p->client, NULL));
    /* The counts stay readable after quit. */
    messenger_fault_counts after;
    CHECK_OK(messenger_client_fault_counts(p->client, &after));
    CHECK(after.dropped >= f.dropped && after.delayed >= f.delayed);
  }
  for (int i = 0; i < PEERS; i++) messenger_client_free(peers[i].client);
  messenger_tracker_free(tracker);
  waiter_destroy(&w);
}

int main(void) {
  test_name = "test_load";
  /* A small window: every sender fills it and waits for room many times. */
  exchange((run){.window = 16, .faults = "", .per_sender = MAX_PER_SENDER});
  printf("test_load: window 16: %d x %d messages in each group, exact\n", PEERS,
         MAX_PER_SENDER);
  /* Faults on every client's datagrams. */
  exchange((run){.window = 0, .faults = "loss=0.1,dup=0.05,reorder=0.2,seed=7",
                 .per_sender = 1000});
  printf("test_load: under faults: %d x 1000 messages in each group, exact\n", PEERS);
  printf("test_load: ok\n");
  return 0;
}
