//! Coalescing: while a miss is in flight, identical requests (same key) attach to it and receive each frame
//! as it arrives, the frames so far first. A follower that finds the leader failed before its response head
//! goes upstream itself.
//!
//! 1. [`Flights::join`] makes the first request for a key the [`Leader`] and the next ones, up to
//!    `max_followers`, [`Follower`]s; past that (or with coalescing off) a request goes alone.
//! 2. The leader publishes the response head ([`Leader::head`], only for a `200`), then every frame
//!    ([`Leader::frame`]), then its end: [`Leader::complete`] for a normal end, or a failure when it is dropped
//!    without completing (error status, upstream cut, client gone without a drain).
//! 3. A follower waits for the head ([`Follower::head`]; `None` = go upstream), then reads frames in order
//!    ([`Follower::next`]) until the end. Waiting is on a `Notify` the follower registers with before it
//!    reads the state, so no frame is missed and no follower polls; the leader wakes it only when a
//!    follower is attached.
//!
//! A response larger than `max_entry_bytes` stops taking followers (new requests go upstream); the followers
//! already attached still get all of it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::Notify;

use crate::{CacheKey, Entry, lock};

/// The requests in flight, by key.
pub struct Flights {
    inner: Arc<Inner>,
}

struct Inner {
    /// foldhash (seeded per map) rather than SipHash: the key is already a digest.
    map: Mutex<HashMap<CacheKey, Arc<Flight>, foldhash::fast::RandomState>>,
    max_followers: usize,
    max_bytes: usize,
}

/// The response head followers get: what a replay needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub status: u16,
    pub content_type: Option<String>,
}

struct Flight {
    state: Mutex<State>,
    /// Woken at every change while followers are attached (no allocation: a flight is made per miss).
    changed: Notify,
}

#[derive(Default)]
struct State {
    head: Option<Head>,
    frames: Vec<Bytes>,
    bytes: usize,
    /// `Some(true)`: ended normally; `Some(false)`: failed.
    end: Option<bool>,
    followers: usize,
    /// Past `max_bytes`: no new followers, nothing to store.
    oversize: bool,
}

/// What [`Flights::join`] made of a request.
pub enum Join {
    Leader(Leader),
    Follower(Follower),
    /// Coalescing is off, or this key has all the followers it may have: go upstream without a flight.
    Alone,
}

impl Flights {
    /// `max_followers = 0` turns coalescing off.
    pub fn new(max_followers: usize, max_bytes: usize) -> Self {
        Self { inner: Arc::new(Inner { map: Mutex::new(HashMap::default()), max_followers, max_bytes }) }
    }

    /// Joins the flight for `key`, or starts it (see the module steps).
    pub fn join(&self, key: &CacheKey) -> Join {
        if self.inner.max_followers == 0 {
            return Join::Alone;
        }
        let mut map = lock(&self.inner.map);
        if let Some(flight) = map.get(key) {
            let mut state = lock(&flight.state);
            if state.followers >= self.inner.max_followers || state.oversize || state.end == Some(false) {
                return Join::Alone;
            }
            state.followers += 1;
            drop(state);
            return Join::Follower(Follower { flight: flight.clone(), next: 0 });
        }
        let flight = Arc::new(Flight { state: Mutex::new(State::default()), changed: Notify::new() });
        map.insert(*key, flight.clone());
        Join::Leader(Leader { flight, key: *key, flights: self.inner.clone() })
    }

    /// A leader nobody can join (coalescing off, or the key has all its followers): it still collects the
    /// response to store it.
    pub fn solo(&self, key: &CacheKey) -> Leader {
        let flight = Arc::new(Flight { state: Mutex::new(State::default()), changed: Notify::new() });
        Leader { flight, key: *key, flights: self.inner.clone() }
    }

    /// Requests in flight with a leader (for tests and `/status`).
    pub fn in_flight(&self) -> usize {
        lock(&self.inner.map).len()
    }
}

/// The request that goes upstream for a key; dropping it without [`Leader::complete`] fails the flight.
pub struct Leader {
    flight: Arc<Flight>,
    key: CacheKey,
    flights: Arc<Inner>,
}

impl Leader {
    /// Publishes the response head. Anything but a `200` fails the flight (followers go upstream themselves).
    pub fn head(&self, head: Head) {
        let ok = head.status == 200;
        self.update(|state| {
            if ok {
                state.head = Some(head);
            } else {
                state.end = Some(false);
            }
        });
        if !ok {
            self.retire();
        }
    }

    /// Publishes one frame of the body.
    pub fn frame(&self, frame: &Bytes) {
        let max = self.flights.max_bytes;
        let mut became_oversize = false;
        self.update(|state| {
            state.bytes = state.bytes.saturating_add(frame.len());
            if state.bytes > max && !state.oversize {
                state.oversize = true;
                became_oversize = true;
            }
            if !state.oversize || state.followers > 0 {
                state.frames.push(frame.clone());
            }
        });
        if became_oversize {
            self.retire();
        }
    }

    /// Ends the flight normally; the entry to store, unless the response was too large to keep.
    pub fn complete(&self) -> Option<Entry> {
        let mut kept = None;
        let mut entry = None;
        self.update(|state| {
            if let (Some(head), false) = (&state.head, state.oversize) {
                if state.followers == 0 {
                    // The usual miss: nobody to hold up, so the entry is built here from the frames as they are.
                    // (They stay: a request that joins before the entry is stored still reads them.)
                    entry = Some(Entry::new(head.status, head.content_type.as_deref(), &state.frames));
                } else {
                    kept = Some((head.clone(), state.frames.clone()));
                }
            }
            state.end = Some(true);
        });
        if let Some(entry) = entry {
            return entry.ok();
        }
        // With followers reading the frames, copied into the entry's one buffer outside the lock.
        let (head, frames) = kept?;
        Entry::new(head.status, head.content_type.as_deref(), &frames).ok()
    }

    fn update(&self, change: impl FnOnce(&mut State)) {
        let followed = {
            let mut state = lock(&self.flight.state);
            change(&mut state);
            state.followers > 0
        };
        // Nobody to wake (the usual miss): no notification. A follower joins under the state lock and registers
        // for the next wake-up before it reads the state, so it never misses a change.
        if followed {
            self.flight.changed.notify_waiters();
        }
    }

    /// Takes the flight out of the map (if it is still this one), so new requests no longer join it.
    fn retire(&self) {
        let mut map = lock(&self.flights.map);
        if map.get(&self.key).is_some_and(|f| Arc::ptr_eq(f, &self.flight)) {
            map.remove(&self.key);
        }
    }
}

impl Drop for Leader {
    fn drop(&mut self) {
        self.update(|state| {
            if state.end.is_none() {
                state.end = Some(false);
            }
        });
        self.retire();
    }
}

/// A request attached to a leader.
pub struct Follower {
    flight: Arc<Flight>,
    next: usize,
}

/// What a follower reads next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FollowerFrame {
    Data(Bytes),
    /// The leader's response ended normally: the follower has every byte.
    End,
    /// The leader's response broke after its head: the follower's breaks too.
    Failed,
}

impl Follower {
    /// The leader's response head, once it has one; `None` when the leader failed first (go upstream).
    pub async fn head(&mut self) -> Option<Head> {
        let flight = &self.flight;
        loop {
            let changed = flight.changed.notified();
            let mut changed = std::pin::pin!(changed);
            // Registered before the state is read: a change made after the read still wakes this wait.
            changed.as_mut().enable();
            {
                let state = lock(&flight.state);
                if let Some(head) = &state.head {
                    return Some(head.clone());
                }
                if state.end.is_some() {
                    return None;
                }
            }
            changed.await;
        }
    }

    /// The next frame, waiting for it if the leader has not received it yet.
    pub async fn next(&mut self) -> FollowerFrame {
        let flight = &self.flight;
        loop {
            let changed = flight.changed.notified();
            let mut changed = std::pin::pin!(changed);
            changed.as_mut().enable();
            {
                let state = lock(&flight.state);
                if let Some(frame) = state.frames.get(self.next) {
                    self.next += 1;
                    return FollowerFrame::Data(frame.clone());
                }
                match state.end {
                    Some(true) => return FollowerFrame::End,
                    Some(false) => return FollowerFrame::Failed,
                    None => {}
                }
            }
            changed.await;
        }
    }
}

#[cfg(test)]
mod tests;
