//! What the chat does with what the client delivers: messages and notices printed, and the
//! state the command loop needs kept up to date (which groups this chat is in, which of its
//! own messages came back).
//!
//! The client calls the handler on its dispatcher thread, one call at a time, in delivery
//! order per group.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use messenger_core::{ClientEvent, GroupView, Handler, Message, Order};
use tokio::sync::watch;

use crate::output::Output;

/// State shared by the handler and the command loop.
#[derive(Debug)]
pub struct ChatState {
    /// The groups this chat is in, with their order.
    groups: Mutex<BTreeMap<String, Order>>,
    /// This chat's own messages, sent and delivered back.
    own: watch::Sender<OwnMessages>,
    /// Set once the chat quits: the tracker then closes the connection, which is no news.
    quitting: AtomicBool,
}

impl Default for ChatState {
    fn default() -> Self {
        ChatState {
            groups: Mutex::default(),
            own: watch::Sender::new(OwnMessages::default()),
            quitting: AtomicBool::new(false),
        }
    }
}

impl ChatState {
    pub fn joined(&self, group: &str, order: Order) {
        self.lock_groups().insert(group.to_string(), order);
    }

    /// This chat is no longer in `group` (left, removed): its own messages there will not come
    /// back.
    pub fn gone(&self, group: &str) {
        self.lock_groups().remove(group);
        self.own.send_modify(|own| own.forget(group));
    }

    /// The chat is quitting: connection events are no longer news.
    pub fn quitting(&self) {
        self.quitting.store(true, Ordering::SeqCst);
    }

    pub fn is_member(&self, group: &str) -> bool {
        self.lock_groups().contains_key(group)
    }

    pub fn groups(&self) -> BTreeMap<String, Order> {
        self.lock_groups().clone()
    }

    /// This chat sent message `seq` to `group`.
    pub fn sent(&self, group: &str, seq: u64) {
        self.own.send_modify(|own| own.sent(group, seq));
    }

    /// Watches the own messages (to wait until every one came back).
    pub fn watch_own(&self) -> watch::Receiver<OwnMessages> {
        self.own.subscribe()
    }

    fn lock_groups(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Order>> {
        self.groups.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Per group, the highest sequence number this chat sent and the highest delivered back to
/// it (a sender's messages come back in the order it sent them, in either order of group).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OwnMessages {
    groups: HashMap<String, (u64, u64)>,
}

impl OwnMessages {
    fn sent(&mut self, group: &str, seq: u64) {
        let entry = self.groups.entry(group.to_string()).or_default();
        entry.0 = entry.0.max(seq);
    }

    fn delivered(&mut self, group: &str, seq: u64) {
        let entry = self.groups.entry(group.to_string()).or_default();
        entry.1 = entry.1.max(seq);
    }

    fn forget(&mut self, group: &str) {
        self.groups.remove(group);
    }

    /// Whether every message sent came back.
    pub fn all_delivered(&self) -> bool {
        self.groups.values().all(|(sent, back)| back >= sent)
    }
}

/// The chat's [`Handler`].
#[derive(Debug)]
pub struct ChatHandler {
    me: String,
    output: Output,
    state: Arc<ChatState>,
}

impl ChatHandler {
    pub fn new(me: &str, output: Output, state: Arc<ChatState>) -> Self {
        ChatHandler {
            me: me.to_string(),
            output,
            state,
        }
    }
}

impl Handler for ChatHandler {
    fn on_message(&mut self, message: Message) {
        if message.own {
            self.state
                .own
                .send_modify(|own| own.delivered(&message.group, message.seq));
        }
        self.output.message(&message);
    }

    fn on_view(&mut self, view: GroupView) {
        if view.joined.contains(&self.me) {
            // The view that added this chat (after a join, or a re-join after reconnecting):
            // everyone in it is "new", so name them once.
            self.state.joined(&view.group, view.order);
            let others: Vec<&str> = view
                .members
                .iter()
                .map(|m| m.name.as_str())
                .filter(|n| *n != self.me)
                .collect();
            let order = view.order;
            self.output.notice(&if others.is_empty() {
                format!(
                    "you joined {} ({order} order); no one else is in it yet",
                    view.group
                )
            } else {
                format!(
                    "you joined {} ({order} order) with {}",
                    view.group,
                    others.join(", ")
                )
            });
            return;
        }
        for name in &view.joined {
            self.output.notice(&format!("{name} joined {}", view.group));
        }
        for name in &view.left {
            self.output.notice(&format!("{name} left {}", view.group));
        }
    }

    fn on_event(&mut self, event: ClientEvent) {
        if self.state.quitting.load(Ordering::SeqCst)
            && matches!(
                event,
                ClientEvent::TrackerLost { .. } | ClientEvent::Reconnected { .. }
            )
        {
            return;
        }
        let text = match event {
            ClientEvent::TrackerLost { reason } => {
                format!("lost the tracker ({reason}); messages still flow, reconnecting")
            }
            ClientEvent::Reconnected { groups } if groups.is_empty() => {
                "reconnected to the tracker".to_string()
            }
            ClientEvent::Reconnected { groups } => {
                format!(
                    "reconnected to the tracker and re-joined {}",
                    groups.join(", ")
                )
            }
            ClientEvent::RejoinFailed { group, reason } => {
                self.state.gone(&group);
                format!("could not re-join {group}: {reason}")
            }
            ClientEvent::Removed { group } => {
                self.state.gone(&group);
                format!("the tracker removed you from {group}")
            }
            ClientEvent::Lost {
                group,
                sender,
                first,
                last,
            } if first == last => {
                format!("message {first} of {sender} in {group} is lost")
            }
            ClientEvent::Lost {
                group,
                sender,
                first,
                last,
            } => format!("messages {first} to {last} of {sender} in {group} are lost"),
            other => format!("{other:?}"),
        };
        self.output.notice(&text);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_messages_are_counted_per_group() {
        let mut own = OwnMessages::default();
        assert!(own.all_delivered());
        own.sent("a", 1);
        own.sent("a", 2);
        own.sent("b", 1);
        assert!(!own.all_delivered());
        own.delivered("a", 2);
        assert!(!own.all_delivered());
        own.forget("b");
        assert!(own.all_delivered());
    }
}
