/*
 * A tracker process over the C API, for the process-level tests (demo_interop.sh):
 *
 *   tracker [BIND_ADDRESS]
 *
 * Prints `tracker listening on ADDR` once it listens, runs until its standard input closes,
 * then prints its counters and stops.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdio.h>

#include "messenger.h"

static int failed(const char *what) {
  char message[512] = "";
  messenger_last_error(message, sizeof message, NULL);
  fprintf(stderr, "tracker: %s: %s\n", what, message);
  return 1;
}

int main(int argc, char **argv) {
  const char *bind = argc > 1 ? argv[1] : "127.0.0.1:0";
  messenger_tracker *tracker = NULL;
  if (messenger_tracker_new(bind, NULL, 0, 0, &tracker) != MESSENGER_OK) return failed("start");
  char addr[64];
  if (messenger_tracker_address(tracker, addr, sizeof addr, NULL) != MESSENGER_OK) {
    return failed("address");
  }
  printf("tracker listening on %s\n", addr);
  fflush(stdout);
  while (getchar() != EOF) {
  }
  messenger_tracker_counters stats;
  if (messenger_tracker_stats(tracker, &stats) != MESSENGER_OK) return failed("stats");
  printf("tracker: %u clients, %u groups, %llu requests, %llu refused\n", stats.clients,
         stats.groups, (unsigned long long)stats.requests, (unsigned long long)stats.errors);
  messenger_tracker_free(tracker);
  return 0;
}
