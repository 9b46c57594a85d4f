//! The state every connection shares: the [`Store`] and the outboxes of the registered
//! clients, behind one lock.
//!
//! Holding the lock while queueing replies and pushes is what orders them: two changes of a
//! group are decided one after the other, and the frames of the first are in every outbox
//! before any frame of the second. Nothing under the lock waits: the store is synchronous
//! and outboxes are unbounded channels.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use bytes::Bytes;

use crate::protocol::tracker::{ClientId, Departure, Push, Refusal};
use crate::protocol::types::{MemberId, ViewId};
use crate::protocol::wire::{
    ErrorCode, Hello, Reply, Request, ServerFrame, TrackerStats, View, ViewDelta,
};

use super::outbox::{self, Outbox};
use super::store::Store;

/// What the connection needs to know of a reply (to log it and to end the session).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    Joined {
        group: String,
        member: MemberId,
        view: ViewId,
    },
    Left,
    /// A report of a silent member was counted; `removed` if it took the member out.
    Suspected {
        removed: bool,
    },
    Bye,
    Refused {
        code: ErrorCode,
        message: String,
    },
    /// A join refused for a wrong password, the `failures`th of the session. Its reply is
    /// not queued: the connection sends it after a delay (see `TrackerConfig`).
    WrongPassword {
        message: String,
        failures: u32,
        reply: Option<Bytes>,
    },
    Answered,
}

impl Outcome {
    fn of(reply: &Reply) -> Outcome {
        match reply {
            Reply::Joined { member, view } => Outcome::Joined {
                group: view.name.clone(),
                member: *member,
                view: view.id,
            },
            Reply::Left => Outcome::Left,
            Reply::Bye => Outcome::Bye,
            Reply::Error { code, message } => Outcome::Refused {
                code: *code,
                message: message.clone(),
            },
            Reply::Suspected { removed } => Outcome::Suspected { removed: *removed },
            Reply::Groups { .. } | Reply::Members(_) | Reply::Stats(_) => Outcome::Answered,
        }
    }
}

pub(crate) struct Hub {
    inner: Mutex<Inner>,
}

struct Inner {
    store: Box<dyn Store>,
    outboxes: HashMap<ClientId, Outbox>,
}

impl fmt::Debug for Hub {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never waits for the lock: formatting must not deadlock under it.
        match self.inner.try_lock() {
            Ok(inner) => f
                .debug_struct("Hub")
                .field("clients", &inner.outboxes.len())
                .field("stats", &inner.store.stats())
                .finish(),
            Err(_) => f.debug_struct("Hub").finish_non_exhaustive(),
        }
    }
}

impl Hub {
    pub(crate) fn new(store: Box<dyn Store>) -> Self {
        Hub {
            inner: Mutex::new(Inner {
                store,
                outboxes: HashMap::new(),
            }),
        }
    }

    // A panic under the lock cannot leave the registry half-updated in a way that matters
    // more than stopping the tracker would, so a poisoned lock is used as it is.
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers a client (its name is taken from now on); it gets nothing until it is
    /// [`admit`](Hub::admit)ted.
    pub(crate) fn register(&self, hello: &Hello) -> Result<ClientId, Refusal> {
        self.lock().store.register(hello)
    }

    /// Admits a registered client: its outbox gets the welcome first and then everything
    /// pushed to it.
    pub(crate) fn admit(&self, client: ClientId, outbox: Outbox, heartbeat_interval_ms: u64) {
        let mut inner = self.lock();
        outbox.send(&ServerFrame::Welcome {
            client: client.0,
            heartbeat_interval_ms,
        });
        inner.outboxes.insert(client, outbox);
    }

    /// Handles a request: queues its reply to the client, then the views it changed to their
    /// members. After [`Reply::Bye`] the client is gone from the store and gets nothing more.
    pub(crate) fn request(&self, client: ClientId, id: u64, request: Request) -> Outcome {
        let mut inner = self.lock();
        let failures_before = inner.store.wrong_passwords(client);
        let (reply, pushes) = inner.store.handle(Instant::now(), client, request);
        let failures = inner.store.wrong_passwords(client);
        let mut outcome = Outcome::of(&reply);
        let bytes = outbox::encode(&ServerFrame::Reply { id, reply }).or_else(|| {
            outbox::encode(&ServerFrame::Reply {
                id,
                reply: Reply::Error {
                    code: ErrorCode::BadRequest,
                    message: "the reply is too large to send".to_owned(),
                },
            })
        });
        if failures > failures_before {
            let message = match outcome {
                Outcome::Refused { message, .. } => message,
                _ => String::new(),
            };
            outcome = Outcome::WrongPassword {
                message,
                failures,
                reply: bytes,
            };
        } else if let (Some(out), Some(bytes)) = (inner.outboxes.get(&client), bytes) {
            out.push(bytes);
        }
        if outcome == Outcome::Bye {
            inner.outboxes.remove(&client);
        }
        inner.deliver(pushes);
        outcome
    }

    /// Removes a client from the store and forgets its outbox; the others get the new views.
    pub(crate) fn remove(&self, client: ClientId, why: Departure) {
        let mut inner = self.lock();
        let pushes = inner.store.remove(client, why);
        inner.outboxes.remove(&client);
        inner.deliver(pushes);
    }

    /// Drops a client's outbox when the tracker shuts down, so its writer can finish; no views
    /// are pushed (the tracker goes away, not the client).
    pub(crate) fn forget(&self, client: ClientId) {
        self.lock().outboxes.remove(&client);
    }

    pub(crate) fn note_bad_connection(&self) {
        self.lock().store.note_bad_connection();
    }

    pub(crate) fn note_refused_connection(&self) {
        self.lock().store.note_refused_connection();
    }

    pub(crate) fn stats(&self) -> TrackerStats {
        self.lock().store.stats()
    }
}

impl Inner {
    /// Queues each push to its client: the change from the previous view when the client
    /// holds it, else the full view. The pushes of one change share their view and delta, so
    /// each is encoded once.
    fn deliver(&self, pushes: Vec<Push>) {
        let mut full: Option<(*const (), Option<Bytes>)> = None;
        let mut delta: Option<(*const (), Option<Bytes>)> = None;
        for push in &pushes {
            let bytes = match &push.delta {
                Some(d) => encoded(&mut delta, Arc::as_ptr(d).cast(), || {
                    ServerFrame::ViewDelta(ViewDelta::clone(d))
                }),
                None => encoded(&mut full, Arc::as_ptr(&push.view).cast(), || {
                    ServerFrame::ViewChange(View::clone(&push.view))
                }),
            };
            if let (Some(out), Some(bytes)) = (self.outboxes.get(&push.to), bytes) {
                out.push(bytes);
            }
        }
    }
}

/// The encoding of the frame made by `frame`, reusing the last one when it was made for the
/// same shared value (`key`).
fn encoded(
    last: &mut Option<(*const (), Option<Bytes>)>,
    key: *const (),
    frame: impl FnOnce() -> ServerFrame,
) -> Option<Bytes> {
    match last {
        Some((k, bytes)) if *k == key => bytes.clone(),
        _ => {
            let bytes = outbox::encode(&frame());
            *last = Some((key, bytes.clone()));
            bytes
        }
    }
}
