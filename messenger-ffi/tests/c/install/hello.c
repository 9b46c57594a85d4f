/*
 * Built by `make test-c` with `pkg-config --cflags --libs messenger` against a temporary
 * `make install PREFIX=...`: a tracker and a client in one process; the client joins a group
 * and gets its own message back.
 */
#include "../harness.h" /* includes <messenger.h> from the installed prefix */

static waiter w;
static int delivered;

static void on_message(void *userdata, const char *group, const char *sender,
                       const uint8_t *bytes, size_t len, uint64_t seq) {
  (void)userdata;
  waiter_lock(&w);
  if (strcmp(group, "hello") == 0 && strcmp(sender, "installed") == 0 && len == 5 &&
      memcmp(bytes, "hello", 5) == 0 && seq == 1) {
    delivered = 1;
  }
  waiter_signal(&w);
}

int main(void) {
  test_name = "install/hello";
  waiter_init(&w);
  char addr[64];
  messenger_tracker *tracker = start_tracker(NULL, addr, sizeof addr);
  messenger_client_config *config = NULL;
  messenger_client *client = NULL;
  CHECK_OK(messenger_client_config_new(addr, "installed", &config));
  CHECK_OK(messenger_client_config_on_message(config, on_message, NULL, NULL));
  CHECK_OK(messenger_client_new(config, &client));
  CHECK_OK(messenger_client_join(client, "hello", MESSENGER_ORDER_TOTAL, NULL));
  CHECK_OK(messenger_client_send(client, "hello", (const uint8_t *)"hello", 5, NULL));
  WAIT_UNTIL(&w, delivered, "the message back");
  CHECK_OK(messenger_client_quit(client, NULL));
  messenger_client_free(client);
  messenger_tracker_free(tracker);
  waiter_destroy(&w);
  printf("install/hello: ok (libmessenger %s)\n", messenger_version());
  return 0;
}
