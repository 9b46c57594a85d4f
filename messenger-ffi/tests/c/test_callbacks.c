/*
 * Callbacks: they run on one library thread per client, one at a time; they may call back
 * into the library without deadlock (send, flush, leave, join, quit, even free their own
 * client); connection events arrive when the tracker goes away and comes back; every userdata
 * free function runs exactly once, whichever way the config or client ends.
 */
#include "harness.h"

#include <stdatomic.h>

#define PINGS 300
#define ECHO "echo"
#define NOT_YET ((messenger_result)9999)

typedef enum role { ALICE, BOB, CAROL, DAVE, ERIN, PEERS } role;
static const char *NAMES[PEERS] = {"alice", "bob", "carol", "dave", "erin"};

typedef struct peer {
  free_counter frees; /* first: count_free reads it through the userdata pointer */
  role role;
  messenger_client *client;
  waiter *w;
  /* Where and how callbacks ran. */
  pthread_t callback_thread;
  int thread_known, wrong_thread;
  atomic_int in_callback;
  atomic_int overlaps;
  /* What the scenarios record (under the waiter's mutex). */
  int echo_members;
  int pongs, pong_failures;
  int saw_carol_leave, side_joined, got_after_dave;
  messenger_result flush_result, leave_result, send_after_leave, join_side_result, quit_result;
  int calls_after_quit;
  int quit_done;
  messenger_metrics final_metrics;
  int events_lost, events_reconnected, bad_events;
} peer;

static peer peers[PEERS];
static waiter w;
static pthread_t main_thread;

/* Bookkeeping at the start and end of every callback. */
static void enter(peer *p) {
  if (atomic_fetch_add(&p->in_callback, 1) != 0) atomic_fetch_add(&p->overlaps, 1);
  waiter_lock(p->w);
  if (pthread_equal(pthread_self(), main_thread)) p->wrong_thread++;
  if (!p->thread_known) {
    p->callback_thread = pthread_self();
    p->thread_known = 1;
  } else if (!pthread_equal(p->callback_thread, pthread_self())) {
    p->wrong_thread++;
  }
  if (p->quit_done) p->calls_after_quit++;
  pthread_mutex_unlock(&p->w->mu);
}

static void leave(peer *p) {
  atomic_fetch_sub(&p->in_callback, 1);
  waiter_lock(p->w);
  waiter_signal(p->w);
}

static messenger_result send_text(messenger_client *client, const char *group, const char *text) {
  return messenger_client_send(client, group, (const uint8_t *)text, strlen(text), NULL);
}

static void on_message(void *userdata, const char *group, const char *sender,
                       const uint8_t *bytes, size_t len, uint64_t seq) {
  peer *p = userdata;
  (void)seq;
  char text[64];
  copy_text(text, sizeof text, bytes, len);
  enter(p);
  int from_alice = strcmp(sender, "alice") == 0;
  if (p->role == BOB && from_alice && strncmp(text, "ping ", 5) == 0) {
    /* Sending from inside a callback. */
    char pong[64];
    snprintf(pong, sizeof pong, "pong %s", text + 5);
    if (send_text(p->client, group, pong) != MESSENGER_OK) {
      fprintf(stderr, "bob: pong failed: %s\n", last_error_text());
      waiter_lock(p->w);
      p->pong_failures++;
      pthread_mutex_unlock(&p->w->mu);
    }
  } else if (p->role == BOB && from_alice && strcmp(text, "flush") == 0) {
    messenger_result r = messenger_client_flush(p->client, 10000);
    waiter_lock(p->w);
    p->flush_result = r;
    pthread_mutex_unlock(&p->w->mu);
  } else if (p->role == ALICE && strcmp(sender, "bob") == 0 && strncmp(text, "pong ", 5) == 0) {
    waiter_lock(p->w);
    p->pongs++;
    pthread_mutex_unlock(&p->w->mu);
  } else if (p->role == CAROL && from_alice && strcmp(text, "carol leave") == 0) {
    /* Leaving from inside a callback, then sending there and joining elsewhere. */
    messenger_result left = messenger_client_leave(p->client, ECHO);
    messenger_result sent = send_text(p->client, ECHO, "still here?");
    messenger_result joined = messenger_client_join(p->client, "side", MESSENGER_ORDER_FIFO, NULL);
    waiter_lock(p->w);
    p->leave_result = left;
    p->send_after_leave = sent;
    p->join_side_result = joined;
    pthread_mutex_unlock(&p->w->mu);
  } else if (p->role == DAVE && from_alice && strcmp(text, "dave quit") == 0) {
    /* Quitting from inside a callback: no callback starts afterwards. */
    messenger_metrics m;
    messenger_result r = messenger_client_quit(p->client, &m);
    waiter_lock(p->w);
    p->quit_result = r;
    p->final_metrics = m;
    p->quit_done = 1;
    pthread_mutex_unlock(&p->w->mu);
  } else if (p->role == ERIN && from_alice && strcmp(text, "erin free") == 0) {
    /* Freeing its own client from inside a callback. */
    messenger_client_free(p->client);
    p->client = NULL;
  } else if (strcmp(text, "after dave") == 0) {
    waiter_lock(p->w);
    p->got_after_dave = 1;
    pthread_mutex_unlock(&p->w->mu);
  }
  leave(p);
}

static void on_view(void *userdata, const messenger_view *view) {
  peer *p = userdata;
  enter(p);
  waiter_lock(p->w);
  if (strcmp(view->group, ECHO) == 0) {
    p->echo_members = (int)view->members_len;
    for (size_t i = 0; i < view->left_len; i++) {
      if (strcmp(view->left[i], "carol") == 0) p->saw_carol_leave = 1;
    }
  } else if (strcmp(view->group, "side") == 0) {
    p->side_joined = 1;
  }
  pthread_mutex_unlock(&p->w->mu);
  leave(p);
}

static void on_event(void *userdata, messenger_event_kind kind, const char *group,
                     const char *text) {
  peer *p = userdata;
  enter(p);
  waiter_lock(p->w);
  if (text == NULL || text[0] == '\0') p->bad_events++;
  if (kind == MESSENGER_EVENT_TRACKER_LOST) {
    if (group != NULL || strstr(text, "lost the tracker") == NULL) p->bad_events++;
    p->events_lost++;
  } else if (kind == MESSENGER_EVENT_RECONNECTED) {
    if (group != NULL || strstr(text, "reconnected") == NULL) p->bad_events++;
    p->events_reconnected++;
  }
  pthread_mutex_unlock(&p->w->mu);
  leave(p);
}

static void connect_peer(peer *p, role r, const char *addr) {
  p->role = r;
  p->w = &w;
  p->frees.w = &w;
  p->flush_result = p->leave_result = p->send_after_leave = NOT_YET;
  p->join_side_result = p->quit_result = NOT_YET;
  messenger_client_config *config = NULL;
  CHECK_OK(messenger_client_config_new(addr, NAMES[r], &config));
  CHECK_OK(messenger_client_config_on_message(config, on_message, p, count_free));
  CHECK_OK(messenger_client_config_on_view(config, on_view, p, count_free));
  CHECK_OK(messenger_client_config_on_event(config, on_event, p, count_free));
  CHECK_OK(messenger_client_new(config, &p->client));
}

/* Free functions run exactly once however a config ends, and only if registered. */
static void free_functions_without_a_client(const char *dead_addr) {
  free_counter a = {&w, 0}, b = {&w, 0}, c = {&w, 0}, d = {&w, 0};
  messenger_client_config *config = NULL;

  /* Freed with the config. */
  CHECK_OK(messenger_client_config_new(dead_addr, "x", &config));
  CHECK_OK(messenger_client_config_on_message(config, on_message, &a, count_free));
  CHECK_OK(messenger_client_config_on_view(config, on_view, &b, count_free));
  CHECK_OK(messenger_client_config_on_event(config, on_event, &c, count_free));
  /* Replacing a callback frees the userdata it replaces, at once. */
  CHECK_OK(messenger_client_config_on_message(config, on_message, &d, count_free));
  CHECK(freed_count(&a) == 1 && freed_count(&d) == 0);
  /* A refused registration does not take the userdata. */
  free_counter refused = {&w, 0};
  CHECK(messenger_client_config_on_view(config, NULL, &refused, count_free) ==
        MESSENGER_NULL_ARGUMENT);
  CHECK(messenger_client_config_on_view(NULL, on_view, &refused, count_free) ==
        MESSENGER_NULL_ARGUMENT);
  CHECK(freed_count(&b) == 0 && freed_count(&c) == 0);
  messenger_client_config_free(config);
  CHECK(freed_count(&a) == 1 && freed_count(&b) == 1 && freed_count(&c) == 1);
  CHECK(freed_count(&d) == 1 && freed_count(&refused) == 0);

  /* A failed connection consumes the config: its free functions have run on return. */
  free_counter e = {&w, 0};
  CHECK_OK(messenger_client_config_new(dead_addr, "x", &config));
  CHECK_OK(messenger_client_config_on_message(config, on_message, &e, count_free));
  messenger_client *client = NULL;
  CHECK(messenger_client_new(config, &client) == MESSENGER_TRACKER_UNAVAILABLE);
  CHECK(client == NULL && freed_count(&e) == 1);

  /* No free function: nothing is called. */
  CHECK_OK(messenger_client_config_new(dead_addr, "x", &config));
  CHECK_OK(messenger_client_config_on_message(config, on_message, &e, NULL));
  messenger_client_config_free(config);
  CHECK(freed_count(&e) == 1);
}

int main(void) {
  test_name = "test_callbacks";
  main_thread = pthread_self();
  waiter_init(&w);
  char addr[64];
  messenger_tracker *tracker = start_tracker(NULL, addr, sizeof addr);

  for (role r = ALICE; r < PEERS; r++) {
    connect_peer(&peers[r], r, addr);
    CHECK_OK(messenger_client_join(peers[r].client, ECHO, MESSENGER_ORDER_TOTAL, NULL));
  }
  WAIT_UNTIL(&w,
             peers[ALICE].echo_members == PEERS && peers[BOB].echo_members == PEERS &&
                 peers[CAROL].echo_members == PEERS && peers[DAVE].echo_members == PEERS &&
                 peers[ERIN].echo_members == PEERS,
             "everyone in echo");
  peer *alice = &peers[ALICE], *bob = &peers[BOB], *carol = &peers[CAROL], *dave = &peers[DAVE],
       *erin = &peers[ERIN];

  /* Bob answers each ping from his callback. */
  char text[32];
  for (int i = 1; i <= PINGS; i++) {
    snprintf(text, sizeof text, "ping %d", i);
    CHECK_OK(send_text(alice->client, ECHO, text));
  }
  WAIT_UNTIL(&w, alice->pongs == PINGS || bob->pong_failures > 0, "every pong");
  CHECK(bob->pong_failures == 0);
  CHECK_OK(send_text(alice->client, ECHO, "flush"));
  WAIT_UNTIL(&w, bob->flush_result != NOT_YET, "bob's flush from a callback");
  CHECK(bob->flush_result == MESSENGER_OK);

  /* Carol leaves from her callback (and then cannot send there, and joins another group). */
  CHECK_OK(send_text(alice->client, ECHO, "carol leave"));
  WAIT_UNTIL(&w, carol->join_side_result != NOT_YET, "carol's leave from a callback");
  CHECK(carol->leave_result == MESSENGER_OK);
  CHECK(carol->send_after_leave == MESSENGER_NOT_JOINED);
  CHECK(carol->join_side_result == MESSENGER_OK);
  WAIT_UNTIL(&w, alice->saw_carol_leave && bob->saw_carol_leave && carol->side_joined,
             "carol's departure seen by the others, and her view of side");
  CHECK(alice->echo_members == PEERS - 1);

  /* Dave quits from his callback: his free functions run once it returns, and none of his
   * callbacks starts afterwards. */
  CHECK_OK(send_text(alice->client, ECHO, "dave quit"));
  WAIT_UNTIL(&w, dave->quit_done && dave->frees.freed == 3, "dave's quit from a callback");
  CHECK(dave->quit_result == MESSENGER_OK);
  CHECK(dave->final_metrics.received >= PINGS);
  CHECK_OK(send_text(alice->client, ECHO, "after dave"));
  WAIT_UNTIL(&w, bob->got_after_dave && alice->echo_members == PEERS - 2,
             "bob to get the next message and see dave gone");
  CHECK(dave->calls_after_quit == 0 && !dave->got_after_dave);
  CHECK(messenger_client_join(dave->client, ECHO, MESSENGER_ORDER_TOTAL, NULL) ==
        MESSENGER_CLOSED);
  messenger_client_free(dave->client);
  CHECK(freed_count(&dave->frees) == 3);

  /* Erin frees her own client from her callback. */
  CHECK_OK(send_text(alice->client, ECHO, "erin free"));
  WAIT_UNTIL(&w, erin->frees.freed == 3, "erin's free functions after her free from a callback");

  /* The tracker goes away and comes back on the same address: connection events. */
  CHECK_OK(messenger_tracker_stop(tracker));
  WAIT_UNTIL(&w,
             alice->events_lost == 1 && bob->events_lost == 1 && carol->events_lost == 1,
             "every client to report the tracker lost");
  messenger_tracker_free(tracker);
  tracker = NULL;
  CHECK_OK(messenger_tracker_new(addr, NULL, 0, 0, &tracker));
  WAIT_UNTIL(&w,
             alice->events_reconnected == 1 && bob->events_reconnected == 1 &&
                 carol->events_reconnected == 1,
             "every client to report the reconnection");

  for (role r = ALICE; r <= CAROL; r++) {
    CHECK_OK(messenger_client_quit(peers[r].client, NULL));
    CHECK(freed_count(&peers[r].frees) == 3);
    messenger_client_free(peers[r].client);
  }
  for (role r = ALICE; r < PEERS; r++) {
    peer *p = &peers[r];
    if (p->wrong_thread || atomic_load(&p->overlaps) || p->bad_events) {
      fprintf(stderr, "%s: %d callbacks on another thread, %d overlapping, %d bad events\n",
              NAMES[r], p->wrong_thread, atomic_load(&p->overlaps), p->bad_events);
      CHECK(!"callbacks on one thread, one at a time");
    }
    CHECK(freed_count(&p->frees) == 3);
  }
  /* Two clients never share a callback thread. */
  CHECK(!pthread_equal(alice->callback_thread, bob->callback_thread));

  messenger_tracker_free(tracker);
  /* No tracker listens at addr any more. */
  free_functions_without_a_client(addr);
  waiter_destroy(&w);
  printf("test_callbacks: ok\n");
  return 0;
}
