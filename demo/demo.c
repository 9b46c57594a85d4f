/*
 * demo.c: a small group chat in C over libmessenger (include/messenger.h).
 *
 *   demo TRACKER_ADDRESS NAME < script
 *
 * Reads lines from standard input, like `messenger chat` in scripted mode:
 *
 *   !g                      list the groups on the tracker
 *   !lm <group>             list a group's members and their addresses
 *   !j <group> [fifo|total] join (or create) a group; without an order, an existing group is
 *                           joined with the order it has, a new one is FIFO
 *   !w <group>              choose the group plain lines go to
 *   !e <group>              leave a group
 *   !stats                  this chat's metrics so far
 *   !q                      quit (so does the end of input)
 *   !help                   this list
 *   <text>                  send text to the chosen group (!!text sends "!text")
 *
 * Prints `in <group> <sender> says:: <text>` for each message delivered (its own too, in the
 * group's order), `* ...` notices for joins, leaves and connection events, and answers, on
 * stdout; errors go to stderr as `error: ...`. On quit it waits (at most 10 s) until its own
 * messages are delivered, then reports its metrics to the tracker and prints them.
 *
 * Build: cc -std=c11 -I include demo/demo.c -L target/debug -lmessenger -lpthread
 */
#define _POSIX_C_SOURCE 200809L

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <pthread.h>

#include "messenger.h"

#define MAX_GROUPS 64
#define NAME_CAP 64
#define QUIT_WAIT_SECONDS 10
#define LEAVE_FLUSH_MS 2000

/* What this chat knows of a group it joined. */
typedef struct group_state {
  char name[NAME_CAP];
  int member;
  uint64_t sent; /* highest sequence number this chat sent there */
  uint64_t back; /* highest of its own delivered back */
} group_state;

/* State shared by the input loop (main thread) and the callbacks (the library's thread). */
static struct {
  pthread_mutex_t mu;
  pthread_cond_t changed;
  group_state groups[MAX_GROUPS];
  int ngroups;
} chat = {.mu = PTHREAD_MUTEX_INITIALIZER, .changed = PTHREAD_COND_INITIALIZER};

static const char *me;
static messenger_client *client;
static char current[NAME_CAP]; /* the group plain lines go to; empty for none */

/* ---- output: whole lines, from either thread ---- */

static pthread_mutex_t out_mu = PTHREAD_MUTEX_INITIALIZER;

static void line_to(FILE *f, const char *prefix, const char *fmt, ...) {
  va_list args;
  pthread_mutex_lock(&out_mu);
  fputs(prefix, f);
  va_start(args, fmt);
  vfprintf(f, fmt, args);
  va_end(args);
  fputc('\n', f);
  fflush(f);
  pthread_mutex_unlock(&out_mu);
}

#define notice(...) line_to(stdout, "* ", __VA_ARGS__)
#define answer(...) line_to(stdout, "", __VA_ARGS__)
#define error(...) line_to(stderr, "error: ", __VA_ARGS__)

static const char *last_error(void) {
  static _Thread_local char buf[512];
  if (messenger_last_error(buf, sizeof buf, NULL) != MESSENGER_OK) strcpy(buf, "(no message)");
  return buf;
}

static const char *order_name(messenger_order order) {
  return order == MESSENGER_ORDER_TOTAL ? "total" : "fifo";
}

/* Message text on one line: control characters escaped as Rust's escape_default does. */
static void escape_one_line(char *out, size_t cap, const uint8_t *bytes, size_t len) {
  size_t o = 0;
  for (size_t i = 0; i < len && o + 12 < cap; i++) {
    uint8_t c = bytes[i];
    if (c == '\n') o += (size_t)snprintf(out + o, cap - o, "\\n");
    else if (c == '\r') o += (size_t)snprintf(out + o, cap - o, "\\r");
    else if (c == '\t') o += (size_t)snprintf(out + o, cap - o, "\\t");
    else if (c < 0x20 || c == 0x7f) o += (size_t)snprintf(out + o, cap - o, "\\u{%x}", c);
    else out[o++] = (char)c;
  }
  out[o] = '\0';
}

/* ---- groups this chat is in (call with chat.mu held) ---- */

static group_state *find_group(const char *name, int create) {
  for (int i = 0; i < chat.ngroups; i++) {
    if (strcmp(chat.groups[i].name, name) == 0) return &chat.groups[i];
  }
  if (!create || chat.ngroups == MAX_GROUPS || strlen(name) >= NAME_CAP) return NULL;
  group_state *g = &chat.groups[chat.ngroups++];
  memset(g, 0, sizeof *g);
  strcpy(g->name, name);
  return g;
}

static int is_member(const char *name) {
  pthread_mutex_lock(&chat.mu);
  group_state *g = find_group(name, 0);
  int member = g != NULL && g->member;
  pthread_mutex_unlock(&chat.mu);
  return member;
}

static int member_count(void) {
  int n = 0;
  pthread_mutex_lock(&chat.mu);
  for (int i = 0; i < chat.ngroups; i++) n += chat.groups[i].member;
  pthread_mutex_unlock(&chat.mu);
  return n;
}

/* This chat is no longer in `name`: its own messages there will not come back. */
static void gone(const char *name) {
  pthread_mutex_lock(&chat.mu);
  group_state *g = find_group(name, 0);
  if (g != NULL) g->member = 0, g->sent = g->back = 0;
  pthread_cond_broadcast(&chat.changed);
  pthread_mutex_unlock(&chat.mu);
}

/* ---- callbacks: on the library's callback thread, one at a time ---- */

static void on_message(void *userdata, const char *group, const char *sender,
                       const uint8_t *bytes, size_t len, uint64_t seq) {
  (void)userdata;
  char text[4 * 1200 + 1];
  escape_one_line(text, sizeof text, bytes, len);
  if (strcmp(sender, me) == 0) {
    pthread_mutex_lock(&chat.mu);
    group_state *g = find_group(group, 0);
    if (g != NULL && seq > g->back) g->back = seq;
    pthread_cond_broadcast(&chat.changed);
    pthread_mutex_unlock(&chat.mu);
  }
  answer("in %s %s says:: %s", group, sender, text);
}

static void on_view(void *userdata, const messenger_view *view) {
  (void)userdata;
  for (size_t i = 0; i < view->joined_len; i++) {
    if (strcmp(view->joined[i], me) != 0) continue;
    /* The view that added this chat: name everyone once. */
    char others[1024] = "";
    for (size_t m = 0; m < view->members_len; m++) {
      const char *name = view->members[m].name;
      if (strcmp(name, me) == 0) continue;
      if (others[0] != '\0') strncat(others, ", ", sizeof others - strlen(others) - 1);
      strncat(others, name, sizeof others - strlen(others) - 1);
    }
    if (others[0] == '\0') {
      notice("you joined %s (%s order); no one else is in it yet", view->group,
             order_name(view->order));
    } else {
      notice("you joined %s (%s order) with %s", view->group, order_name(view->order), others);
    }
    return;
  }
  for (size_t i = 0; i < view->joined_len; i++) notice("%s joined %s", view->joined[i], view->group);
  for (size_t i = 0; i < view->left_len; i++) notice("%s left %s", view->left[i], view->group);
}

static void on_event(void *userdata, messenger_event_kind kind, const char *group,
                     const char *text) {
  (void)userdata;
  if (group != NULL && (kind == MESSENGER_EVENT_REMOVED || kind == MESSENGER_EVENT_REJOIN_FAILED)) {
    gone(group);
  }
  notice("%s", text);
}

/* ---- commands ---- */

static void list_groups(void) {
  messenger_group_list list;
  if (messenger_client_groups(client, &list) != MESSENGER_OK) {
    error("%s", last_error());
    return;
  }
  if (list.len == 0) {
    answer("no groups yet: !j <group> creates one");
  } else {
    answer("groups:");
    for (size_t i = 0; i < list.len; i++) {
      const messenger_group *g = &list.groups[i];
      const char *mark = strcmp(g->name, current) == 0 ? ", you write here"
                         : is_member(g->name)          ? ", you are in it"
                                                       : "";
      answer("  %s (%s order, %u member%s%s)", g->name, order_name(g->order), g->members,
             g->members == 1 ? "" : "s", mark);
    }
  }
  messenger_group_list_free(&list);
}

static void list_members(const char *group) {
  messenger_member_list list;
  if (messenger_client_members(client, group, &list) != MESSENGER_OK) {
    error("%s", last_error());
    return;
  }
  answer("members of %s (%s order):", group, order_name(list.order));
  for (size_t i = 0; i < list.len; i++) {
    const messenger_member *m = &list.members[i];
    answer("  %s %s%s", m->name, m->address, strcmp(m->name, me) == 0 ? " (you)" : "");
  }
  messenger_member_list_free(&list);
}

static void join(const char *group, const char *order_word) {
  if (is_member(group)) {
    error("you are already in %s: use !w %s to write to it", group, group);
    return;
  }
  int order_given = order_word != NULL;
  messenger_order order = order_word != NULL && strcmp(order_word, "total") == 0
                              ? MESSENGER_ORDER_TOTAL
                              : MESSENGER_ORDER_FIFO;
  messenger_result r = messenger_client_join(client, group, order, NULL);
  if (r == MESSENGER_ORDER_MISMATCH && !order_given) {
    /* An existing group is joined with the order it has. */
    order = order == MESSENGER_ORDER_FIFO ? MESSENGER_ORDER_TOTAL : MESSENGER_ORDER_FIFO;
    r = messenger_client_join(client, group, order, NULL);
  }
  if (r != MESSENGER_OK) {
    error("%s", last_error());
    return;
  }
  pthread_mutex_lock(&chat.mu);
  group_state *g = find_group(group, 1);
  if (g != NULL) g->member = 1;
  pthread_mutex_unlock(&chat.mu);
  snprintf(current, sizeof current, "%s", group);
}

static void leave(const char *group) {
  if (!is_member(group)) {
    error("you are not in %s", group);
    return;
  }
  /* Let what this chat just said reach everyone before it goes. */
  (void)messenger_client_flush(client, LEAVE_FLUSH_MS);
  if (messenger_client_leave(client, group) != MESSENGER_OK) {
    error("%s", last_error());
    return;
  }
  gone(group);
  int was_current = strcmp(current, group) == 0;
  if (was_current) current[0] = '\0';
  if (was_current && member_count() > 0) {
    notice("you left %s; use !w <group> to choose where your lines go", group);
  } else {
    notice("you left %s", group);
  }
}

static void say(const char *text) {
  if (current[0] == '\0') {
    error(member_count() == 0 ? "no group chosen: use !j <group> to join one"
                              : "no group chosen: use !w <group>");
    return;
  }
  uint64_t seq = 0;
  if (messenger_client_send(client, current, (const uint8_t *)text, strlen(text), &seq) !=
      MESSENGER_OK) {
    error("%s", last_error());
    return;
  }
  pthread_mutex_lock(&chat.mu);
  group_state *g = find_group(current, 0);
  if (g != NULL && seq > g->sent) g->sent = seq;
  pthread_mutex_unlock(&chat.mu);
}

static void print_metrics(const messenger_metrics *m) {
  char block[1024];
  if (messenger_metrics_text(m, block, sizeof block, NULL) == MESSENGER_OK) answer("%s", block);
}

static void help(void) {
  answer("commands:\n"
         "  !g                      list the groups on the tracker\n"
         "  !lm <group>             list a group's members and their addresses\n"
         "  !j <group> [fifo|total] join (or create) a group\n"
         "  !w <group>              choose the group your plain lines go to\n"
         "  !e <group>              leave a group\n"
         "  !stats                  your metrics so far\n"
         "  !q                      quit: print your metrics and report them to the tracker\n"
         "  !help                   this list\n"
         "  <text>                  send text to the chosen group (!!text sends \"!text\")");
}

/* Splits `line` into at most `max` words; returns how many there were (may exceed max). */
static int split(char *line, char **words, int max) {
  int n = 0;
  for (char *w = strtok(line, " \t"); w != NULL; w = strtok(NULL, " \t")) {
    if (n < max) words[n] = w;
    n++;
  }
  return n;
}

/* Handles one line; returns 1 to quit. */
static int handle(char *line) {
  line[strcspn(line, "\r\n")] = '\0';
  while (*line == ' ' || *line == '\t') line++;
  size_t end = strlen(line);
  while (end > 0 && (line[end - 1] == ' ' || line[end - 1] == '\t')) line[--end] = '\0';
  if (*line == '\0') return 0;
  if (strncmp(line, "!!", 2) == 0) {
    say(line + 1);
    return 0;
  }
  if (*line != '!') {
    say(line);
    return 0;
  }
  char *words[4];
  int n = split(line, words, 4);
  const char *cmd = words[0];
  if (strcmp(cmd, "!q") == 0 || strcmp(cmd, "!quit") == 0) return 1;
  if (strcmp(cmd, "!g") == 0 || strcmp(cmd, "!groups") == 0) {
    if (n == 1) list_groups();
    else error("!g takes no arguments: usage: !g");
  } else if (strcmp(cmd, "!lm") == 0 || strcmp(cmd, "!w") == 0 || strcmp(cmd, "!e") == 0) {
    if (n != 2) {
      error("%s: usage: %s <group>", n == 1 ? "which group?" : "one group only", cmd);
    } else if (cmd[1] == 'l') {
      list_members(words[1]);
    } else if (cmd[1] == 'e') {
      leave(words[1]);
    } else if (is_member(words[1])) {
      snprintf(current, sizeof current, "%s", words[1]);
    } else {
      error("you are not in %s: use !j %s to join it", words[1], words[1]);
    }
  } else if (strcmp(cmd, "!j") == 0) {
    if (n < 2 || n > 3 || (n == 3 && strcmp(words[2], "fifo") != 0 &&
                           strcmp(words[2], "total") != 0)) {
      error("usage: !j <group> [fifo|total]");
    } else {
      join(words[1], n == 3 ? words[2] : NULL);
    }
  } else if (strcmp(cmd, "!stats") == 0) {
    messenger_metrics m;
    if (messenger_client_metrics(client, &m) == MESSENGER_OK) print_metrics(&m);
  } else if (strcmp(cmd, "!help") == 0 || strcmp(cmd, "!h") == 0) {
    help();
  } else {
    error("unknown command %s: type !help for the commands (start a line with !! to send a "
          "message beginning with !)",
          cmd);
  }
  return 0;
}

/* Waits until this chat's own messages are stable everywhere and delivered back here. */
static void drain(void) {
  messenger_result stable = messenger_client_flush(client, QUIT_WAIT_SECONDS * 1000);
  struct timespec deadline;
  clock_gettime(CLOCK_REALTIME, &deadline);
  deadline.tv_sec += QUIT_WAIT_SECONDS;
  int back = 1;
  pthread_mutex_lock(&chat.mu);
  for (;;) {
    back = 1;
    for (int i = 0; i < chat.ngroups; i++) {
      if (chat.groups[i].member && chat.groups[i].back < chat.groups[i].sent) back = 0;
    }
    if (back || pthread_cond_timedwait(&chat.changed, &chat.mu, &deadline) != 0) break;
  }
  pthread_mutex_unlock(&chat.mu);
  if (stable != MESSENGER_OK || !back) {
    notice("gave up waiting after %d s: some of your messages may not have reached everyone",
           QUIT_WAIT_SECONDS);
  }
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: %s TRACKER_ADDRESS NAME < script\n", argv[0]);
    return 2;
  }
  const char *tracker = argv[1];
  me = argv[2];

  messenger_client_config *config = NULL;
  if (messenger_client_config_new(tracker, me, &config) != MESSENGER_OK ||
      messenger_client_config_on_message(config, on_message, NULL, NULL) != MESSENGER_OK ||
      messenger_client_config_on_view(config, on_view, NULL, NULL) != MESSENGER_OK ||
      messenger_client_config_on_event(config, on_event, NULL, NULL) != MESSENGER_OK) {
    error("%s", last_error());
    messenger_client_config_free(config);
    return 1;
  }
  if (messenger_client_new(config, &client) != MESSENGER_OK) {
    error("cannot register with the tracker at %s: %s", tracker, last_error());
    return 1;
  }
  notice("connected to the tracker at %s as %s; type !help for the commands", tracker, me);

  char *line = NULL;
  size_t cap = 0;
  while (getline(&line, &cap, stdin) != -1) {
    if (handle(line)) break;
  }
  free(line);

  drain();
  messenger_metrics metrics;
  if (messenger_client_quit(client, &metrics) != MESSENGER_OK) {
    error("could not report the metrics to the tracker: %s", last_error());
    (void)messenger_client_metrics(client, &metrics);
  }
  messenger_client_free(client);
  print_metrics(&metrics);
  return 0;
}
