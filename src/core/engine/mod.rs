//! The knock engine: doors, knocks and `now` in; actions and the next
//! deadline out.
//!
//! It owns every decision of the product (which packet advances, breaks or
//! restarts which attempt, when an attempt times out, when a door opens and
//! when its stop command is due) and nothing else: no sockets, clocks,
//! threads, files or processes. Every input carries its time, so a replayed
//! capture gets the decisions the live daemon made, and tests run in
//! virtual time.
//!
//! The run-loop contract (as in quinn-proto and str0m): feed one input
//! ([`Engine::handle_knock`], a batch of them with [`Engine::handle_knocks`],
//! or [`Engine::handle_timeout`]), drain
//! [`Engine::poll_action`] until it returns `None`, then wait until
//! [`Engine::poll_timeout`] or the next input. A `handle_timeout` that finds
//! nothing due does nothing. Time never goes backwards inside the engine: an
//! input older than one already seen is treated as happening at the latest
//! time seen.

mod action;
mod attempts;
mod doors;
mod live;
mod open;
mod stops;

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

pub use action::{
    substitute, substitute_ip, Action, Command, CommandKind, Committed, DoorId, Event, OpenId,
    Opening, Tokens,
};
use doors::{door_map, door_states, same_but_users};
use live::Live;
pub use live::{Variant, MAX_VARIANTS};
pub use stops::PendingStop;

use crate::core::config::{Config, Door, Sequence, Step};
use crate::core::knock::{Knock, Proto, Timestamp};
use attempts::{Attempts, Insert, Source};
use stops::Stops;

/// How many knocks ahead [`Engine::handle_knocks`] loads the attempt a knock
/// will need (and twice that, its index line): enough knocks of work to
/// cover a miss to L3 or memory, few enough that the lines are still cached
/// when used.
pub const PREFETCH_AHEAD: usize = 8;

/// Doors [`Engine::handle_knocks`] prefetches for: configs have a handful;
/// past this many, the rest are looked up without help.
const PREFETCH_DOORS: usize = 8;

/// The two stages of [`Engine::prefetch`]: the attempt can only be found
/// once the index line that points at it has arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prefetch {
    /// The index line where the knock's attempts would be found.
    Index,
    /// The attempts that index line points at.
    Attempt,
}

/// How often at most the engine reports that it had to evict attempts.
pub const EVICTION_REPORT_INTERVAL: Duration = Duration::from_secs(10);

/// Which destination addresses count as "ours" for doors without a
/// `Target`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocalAddrs {
    /// Every destination: for replaying a capture taken on another host.
    Any,
    /// The capture interfaces' addresses (empty while they have none).
    List(Vec<IpAddr>),
}

/// A door at run time: its config and the sequences live now (none once a
/// one-time door is used up or waiting for its next sequence, or before a
/// rotating door gets its first).
struct DoorState {
    name: Arc<str>,
    config: Door,
    live: Live,
    /// Each sequence opens once (a rotating door).
    once: bool,
}

/// Counters of what the engine decided: replay prints them, tests check them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub knocks: u64,
    pub opened: u64,
    pub evicted: u64,
    pub timed_out: u64,
    /// Knocks a door's `Allow`/`Deny` kept out.
    pub refused_by_acl: u64,
}

/// The knock state machine. See the module docs for the contract.
pub struct Engine {
    doors: Vec<DoorState>,
    local: LocalAddrs,
    attempts: Attempts,
    stops: Stops,
    /// One bit per (protocol, port) used by any live sequence: a quick "not a
    /// knock" for everything else, whatever the capture filter let through.
    ports: Vec<u64>,
    actions: VecDeque<Action>,
    now: Timestamp,
    evicted_unreported: u64,
    eviction_report_due: Option<Timestamp>,
    last_eviction_report: Option<Timestamp>,
    stats: Stats,
    /// The last [`OpenId`] handed out.
    opens: u64,
    /// The last [`Opening::id`] handed out.
    proposals: u64,
    /// A proposal was made by the knock being handled.
    proposed: bool,
    /// `Cooldown`: until when each (door, source) is ignored, and whether
    /// that was said.
    cooldowns: HashMap<(DoorId, IpAddr), (Timestamp, bool)>,
}

/// Cool-downs tracked at once at most.
const MAX_COOLDOWNS: usize = 1 << 16;

impl Engine {
    /// An engine for `config`'s doors, with `max_attempts` from its options.
    pub fn new(config: &Config, local: LocalAddrs) -> Self {
        let doors = door_states(config);
        let mut engine = Engine {
            attempts: Attempts::new(doors.len(), config.options.max_attempts),
            doors,
            local,
            stops: Stops::default(),
            ports: Vec::new(),
            actions: VecDeque::new(),
            now: Timestamp::ZERO,
            evicted_unreported: 0,
            eviction_report_due: None,
            last_eviction_report: None,
            stats: Stats::default(),
            opens: 0,
            proposals: 0,
            proposed: false,
            cooldowns: HashMap::new(),
        };
        engine.rebuild_ports();
        engine
    }

    /// Swaps in a new config (SIGHUP). Attempts in progress are dropped, as
    /// knockd does; pending stop commands are kept, so every door opened
    /// under the old config still closes.
    ///
    /// Returns how door ids map from the old config to the new one
    /// (`map[old.0]`): a door keeps its identity when its name does, and
    /// the k-th of several doors sharing a name maps to the k-th of that
    /// name in the new config. Pending stops are re-keyed with it, so a door
    /// open before the reload can still be extended after it.
    ///
    /// One exception: a door of users (`Sequence_Secret_Dir`) whose config
    /// is the same but for its users keeps its attempts and sequences,
    /// when every door keeps its place: a key added or revoked changes
    /// nothing for anyone else. The service then hands it the new users'
    /// sequences ([`Engine::set_variants`]), which drops only the attempts
    /// of a user who left.
    pub fn reload(&mut self, config: &Config) -> Vec<Option<DoorId>> {
        let mut new = door_states(config);
        let map = door_map(&self.doors, &new);
        let in_place = map.len() == new.len()
            && map
                .iter()
                .enumerate()
                .all(|(i, m)| *m == Some(DoorId(i as u16)))
            && self.attempts.cap() == config.options.max_attempts;
        let mut kept = Vec::new();
        if in_place {
            for (i, (old, new)) in self.doors.iter_mut().zip(new.iter_mut()).enumerate() {
                if same_but_users(&old.config, &new.config) {
                    new.live = std::mem::take(&mut old.live);
                    kept.push(i as u16);
                }
            }
        }
        self.doors = new;
        if in_place && !kept.is_empty() {
            for d in 0..self.doors.len() as u16 {
                if !kept.contains(&d) {
                    self.attempts.clear_door(d);
                }
            }
        } else {
            self.attempts = Attempts::new(self.doors.len(), config.options.max_attempts);
        }
        self.stops.remap(&map);
        self.cooldowns = std::mem::take(&mut self.cooldowns)
            .into_iter()
            .filter_map(|((door, src), v)| {
                let door = map.get(door.0 as usize).copied().flatten()?;
                Some(((door, src), v))
            })
            .collect();
        self.rebuild_ports();
        map
    }

    /// Sets the addresses that count as ours (they change at run time).
    pub fn set_local_addrs(&mut self, local: LocalAddrs) {
        self.local = local;
    }

    /// Installs a one-time door's next sequence, or disables the door with
    /// `None`. Attempts at the door are dropped either way.
    pub fn set_sequence(&mut self, door: DoorId, sequence: Option<Sequence>) {
        if let Some(d) = self.doors.get_mut(door.0 as usize) {
            d.live = Live::new(sequence.map(Variant::only).into_iter().collect());
            self.attempts.clear_door(door.0);
            self.rebuild_ports();
        }
    }

    /// Sets the sequences a rotating door accepts (at most
    /// [`MAX_VARIANTS`]; its accepted periods). Attempts following a
    /// sequence that stays (same label) go on; those of a sequence that
    /// left are dropped.
    pub fn set_variants(&mut self, door: DoorId, mut variants: Vec<Variant>) {
        variants.truncate(MAX_VARIANTS);
        let Some(d) = self.doors.get_mut(door.0 as usize) else {
            return;
        };
        // Old variants by what they are: a user revoked leaves, the others'
        // attempts go on (O(variants) per change, never per knock).
        let new: HashMap<(u64, Option<&str>, &Sequence), u16> = variants
            .iter()
            .enumerate()
            .rev()
            .map(|(i, v)| ((v.label, v.user.as_deref(), &v.sequence), i as u16))
            .collect();
        let map: Vec<Option<u16>> = d
            .live
            .variants
            .iter()
            .map(|old| {
                new.get(&(old.label, old.user.as_deref(), &old.sequence))
                    .copied()
            })
            .collect();
        drop(new);
        d.live = Live::new(variants);
        self.attempts.remap_variants(door.0, &map);
        self.rebuild_ports();
    }

    /// The sequences `door` accepts now.
    pub fn variants(&self, door: DoorId) -> &[Variant] {
        self.doors
            .get(door.0 as usize)
            .map_or(&[], |d| d.live.variants.as_slice())
    }

    /// The doors with their live sequences (none: disabled), in config
    /// order, for building the capture filter.
    pub fn doors(&self) -> impl Iterator<Item = (DoorId, &Door, &[Variant])> + '_ {
        self.doors
            .iter()
            .enumerate()
            .map(|(i, d)| (DoorId(i as u16), &d.config, d.live.variants.as_slice()))
    }

    /// Puts back a stop command journaled by an earlier run, under a new
    /// opening number (returned). It belongs to no door: the firewall may
    /// have forgotten the rule meanwhile (a reboot), so a knock must run the
    /// start command again rather than only extend this stop. A stop
    /// already overdue runs at the next [`Engine::handle_timeout`].
    pub fn restore_stop(
        &mut self,
        name: Arc<str>,
        src: IpAddr,
        command: String,
        due: Timestamp,
    ) -> OpenId {
        let open = self.next_open();
        self.stops.add(PendingStop {
            door: None,
            name,
            src,
            command,
            due,
            open,
        });
        open
    }

    /// Schedules `stop` again (a stop the system refused to start), keeping
    /// its opening.
    pub fn reschedule_stop(&mut self, stop: PendingStop) {
        self.stops.add(stop);
    }

    /// Takes the stop of opening `open` off the schedule: the opening was
    /// refused or undone before its start command ran.
    pub fn cancel_open(&mut self, open: OpenId) -> Option<PendingStop> {
        self.stops.remove(open)
    }

    /// Stop commands pending for `door`.
    pub fn pending_stops_of(&self, door: DoorId) -> usize {
        self.stops.count(door)
    }

    /// The actions not yet polled, left in place: what an opening is made
    /// of is decided together.
    pub fn peek_actions(&self) -> impl Iterator<Item = &Action> {
        self.actions.iter()
    }

    fn next_open(&mut self) -> OpenId {
        self.opens += 1;
        OpenId(self.opens)
    }

    /// The stop commands not yet run, in deadline order: what the shell
    /// journals.
    pub fn pending_stops(&self) -> impl Iterator<Item = &PendingStop> {
        self.stops.iter()
    }

    /// The start command of opening `open` (of `door`, for `src`) failed:
    /// the door is not open for that knocker, so a knock must run the start
    /// command again rather than only extend the pending stop
    /// (`Reopen = extend`).
    pub fn start_failed(&mut self, door: DoorId, src: IpAddr, open: OpenId) {
        self.stops.forget_open(door, src, open);
    }

    /// The config of `door` in the running config.
    pub fn door(&self, door: DoorId) -> Option<&Door> {
        self.doors.get(door.0 as usize).map(|d| &d.config)
    }

    /// The name of `door` in the running config.
    pub fn door_name(&self, door: DoorId) -> Option<&Arc<str>> {
        self.doors.get(door.0 as usize).map(|d| &d.name)
    }

    /// Stop commands waiting for their time.
    pub fn pending_stop_count(&self) -> usize {
        self.stops.len()
    }

    /// Runs every pending stop command now (clean shutdown): nothing is left
    /// open behind the daemon.
    pub fn close_all(&mut self, now: Timestamp) {
        self.advance_clock(now);
        while let Some(stop) = self.stops.pop_due(Timestamp::from_nanos(u64::MAX)) {
            self.fire_stop(stop);
        }
    }

    /// The next action to carry out.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// [`Engine::poll_action`] for a user of the engine alone, with no
    /// policy of its own (tests, benchmarks): every proposal is committed
    /// as it comes out, so what it runs follows it.
    pub fn poll_accepting(&mut self) -> Option<Action> {
        let action = self.actions.pop_front()?;
        if let Action::Propose(o) = &action {
            self.commit(o);
        }
        Some(action)
    }

    /// When [`Engine::handle_timeout`] next has something to do.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        self.next_timer().map(|(at, _)| at)
    }

    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Attempts tracked now.
    pub fn tracked_attempts(&self) -> usize {
        self.attempts.len()
    }

    /// Bytes held by the attempt table (bounded by `MaxAttempts`).
    pub fn attempt_table_bytes(&self) -> usize {
        self.attempts.memory_bytes()
    }

    /// Fires everything due at `now`, in deadline order.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        let now = self.advance_clock(now);
        while let Some((at, timer)) = self.next_timer() {
            if at > now {
                break;
            }
            match timer {
                Timer::Attempt(door) => {
                    if let Some(id) = self.attempts.oldest(door) {
                        let a = self.attempts.get(id);
                        let event = Event::SequenceTimeout {
                            src: a.src(),
                            door: self.doors[door as usize].name.clone(),
                            stage: a.stage,
                        };
                        self.attempts.remove(id);
                        self.attempts.warm_door(door);
                        self.stats.timed_out += 1;
                        self.actions.push_back(Action::Log(event));
                    }
                }
                Timer::Stop => {
                    if let Some(stop) = self.stops.pop_due(now) {
                        self.fire_stop(stop);
                    }
                }
                Timer::EvictionReport => {
                    self.actions.push_back(Action::Log(Event::Evicted {
                        count: self.evicted_unreported,
                        cap: self.attempts.cap(),
                    }));
                    self.evicted_unreported = 0;
                    self.eviction_report_due = None;
                    self.last_eviction_report = Some(now);
                }
            }
        }
    }

    /// Processes one captured packet. Timers due by its time fire first, so
    /// a knock exactly at an attempt's deadline finds it already timed out.
    pub fn handle_knock(&mut self, knock: &Knock) {
        let src = self.attempts.source(&knock.src);
        self.handle_knock_from(knock, &src);
    }

    /// [`Engine::handle_knock`] with the source already hashed.
    #[inline]
    fn handle_knock_from(&mut self, knock: &Knock, src: &Source) {
        let now = self.advance_clock(knock.at);
        self.handle_timeout(now);
        if !self.is_knock(knock) {
            return;
        }
        self.stats.knocks += 1;
        let step = Step {
            port: knock.dst_port,
            proto: knock.proto,
        };
        for d in 0..self.doors.len() {
            self.knock_door(d as u16, knock, src, step, now);
        }
    }

    /// Processes captured packets in order: exactly the same decisions and
    /// actions as calling [`Engine::handle_knock`] on each in turn, only
    /// faster for large attempt tables.
    ///
    /// With a million tracked sources the attempt table lives far outside
    /// the CPU caches, and a knock handled alone waits for each cache line
    /// it needs in turn. Given a batch (the capture shell reads packets in
    /// batches anyway), the engine looks ahead: it hashes each knock's
    /// source `2 * PREFETCH_AHEAD` knocks before handling it and starts
    /// loading the index line the hash points at; `PREFETCH_AHEAD` knocks
    /// before, when that line has arrived, it starts loading the attempt the
    /// line points at. Those loads overlap with the work on the knocks in
    /// between. Prefetches are hints computed from the table as it is;
    /// knocks in between may change it, which can waste a prefetch but
    /// never change a decision.
    ///
    /// A knock that completes a sequence ends the batch early: its
    /// proposal must be decided (and, if accepted, committed: its stop
    /// scheduled, its cool-down started) before the next knock is seen, as
    /// if each knock were handled alone. Returns how many knocks were
    /// handled; drain the actions and hand the rest in again.
    pub fn handle_knocks(&mut self, knocks: &[Knock]) -> usize {
        // One knock has nothing to look ahead to: skip the ring.
        if let [k] = knocks {
            self.handle_knock(k);
            return 1;
        }
        const FAR: usize = 2 * PREFETCH_AHEAD;
        const NEAR: usize = PREFETCH_AHEAD;
        // Hashed sources of the knocks in flight, by position mod RING.
        const RING: usize = (FAR + 1).next_power_of_two();
        let mut ring = [Source::default(); RING];
        for (j, k) in knocks.iter().enumerate().take(FAR) {
            ring[j % RING] = self.attempts.source(&k.src);
            self.prefetch_knock(k, &ring[j % RING], false);
        }
        for (j, k) in knocks.iter().enumerate().take(NEAR) {
            self.prefetch_knock(k, &ring[j % RING], true);
        }
        for (i, k) in knocks.iter().enumerate() {
            if let Some(far) = knocks.get(i + FAR) {
                let slot = (i + FAR) % RING;
                ring[slot] = self.attempts.source(&far.src);
                self.prefetch_knock(far, &ring[slot], false);
            }
            if let Some(near) = knocks.get(i + NEAR) {
                self.prefetch_knock(near, &ring[(i + NEAR) % RING], true);
            }
            let src = ring[i % RING];
            self.handle_knock_from(k, &src);
            if std::mem::take(&mut self.proposed) {
                return i + 1;
            }
        }
        knocks.len()
    }

    /// Starts loading what handling `knock` later will need, for a caller
    /// that handles knocks one at a time but can see them coming (`--read`
    /// handles each frame alone, at its own time, to keep the per-frame
    /// decisions of the rate limiter and timers exact). Call with
    /// [`Prefetch::Index`] some knocks ahead, then with
    /// [`Prefetch::Attempt`] about half as many ahead, as
    /// [`Engine::handle_knocks`] does by itself. Only a hint: it changes
    /// nothing, so a knock prefetched and never handled costs nothing else.
    #[inline]
    pub fn prefetch(&self, knock: &Knock, stage: Prefetch) {
        let src = self.attempts.source(&knock.src);
        self.prefetch_knock(knock, &src, stage == Prefetch::Attempt);
    }

    /// One prefetch stage for `k` at every door with a live sequence (at
    /// most [`PREFETCH_DOORS`] of them): the index line, or (`attempt`) the
    /// attempt the index points at. Doors that will not look the knock up
    /// (destination or flags do not match) only waste a prefetch; checking
    /// would cost more.
    #[inline]
    fn prefetch_knock(&self, k: &Knock, src: &Source, attempt: bool) {
        let bit = port_bit(k.proto, k.dst_port);
        if self.ports[bit / 64] & (1 << (bit % 64)) == 0 {
            return;
        }
        for (d, door) in self.doors.iter().enumerate().take(PREFETCH_DOORS) {
            if door.live.is_empty() {
                continue;
            }
            if attempt {
                self.attempts.prefetch_attempt(src, d as u16);
            } else {
                self.attempts.prefetch_index(src, d as u16);
            }
        }
    }

    fn advance_clock(&mut self, at: Timestamp) -> Timestamp {
        self.now = self.now.max(at);
        self.now
    }

    fn dst_matches(local: &LocalAddrs, door: &Door, dst: IpAddr) -> bool {
        match door.target {
            Some(target) => target == dst,
            None => match local {
                LocalAddrs::Any => true,
                LocalAddrs::List(addrs) => addrs.contains(&dst),
            },
        }
    }

    /// Whether any door would count this packet as a knock: what the
    /// capture filter selects, checked again so replay without a filter and
    /// IPv6 packets the filter lets through (extension headers) get the same
    /// decisions.
    fn is_knock(&self, k: &Knock) -> bool {
        let bit = port_bit(k.proto, k.dst_port);
        if self.ports[bit / 64] & (1 << (bit % 64)) == 0 {
            return false;
        }
        self.doors.iter().any(|d| {
            Self::dst_matches(&self.local, &d.config, k.dst)
                && (k.proto == Proto::Udp || d.config.tcp_flags.matches(k.tcp_flags))
                && d.live.has_step(k.proto, k.dst_port)
        })
    }

    fn knock_door(&mut self, d: u16, k: &Knock, src: &Source, step: Step, now: Timestamp) {
        let door = &self.doors[d as usize];
        if door.live.is_empty() || !Self::dst_matches(&self.local, &door.config, k.dst) {
            return;
        }
        // Allow/Deny: a source not admitted neither starts nor advances.
        if !door.config.admits(k.src) {
            self.stats.refused_by_acl += 1;
            tracing::debug!(src = %k.src, door = %door.name, "knock from outside Allow/Deny");
            return;
        }
        // A TCP packet failing the door's flags neither advances nor breaks.
        if k.proto == Proto::Tcp && !door.config.tcp_flags.matches(k.tcp_flags) {
            return;
        }
        // The sequence a first step starts: the first, in the order the
        // door's sequences were given, whose first step it is.
        let starts = door.live.starts(step);
        let stage_event = |stage: u8| {
            Action::Log(Event::Stage {
                src: k.src,
                door: door.name.clone(),
                stage,
            })
        };
        match self.attempts.find(src, d) {
            Ok(id) => {
                let a = self.attempts.get(id);
                let (stage, variant) = (a.stage as usize, a.variant);
                let Some(steps) = door
                    .live
                    .variants
                    .get(variant as usize)
                    .map(|v| v.sequence.steps())
                else {
                    // Its sequence is gone (the door moved on): start over.
                    self.attempts.remove(id);
                    return;
                };
                // A retransmitted step is never taken for another user's.
                let switched = (steps[stage] != step && steps[stage - 1] != step)
                    .then(|| door.live.switch(variant, stage, step))
                    .flatten();
                if steps[stage] == step || switched.is_some() {
                    let variant = switched.unwrap_or(variant);
                    let len = door.live.variants[variant as usize].sequence.len();
                    if switched.is_some() {
                        self.attempts.set_variant(id, variant);
                    }
                    self.attempts.advance(id);
                    self.actions.push_back(stage_event(stage as u8 + 1));
                    if stage + 1 == len {
                        self.attempts.remove(id);
                        self.complete(d, variant, k, now);
                    }
                } else if stage == 1 && steps[0] == step {
                    // The first port again: the sequence starts over, its
                    // clock too (SPEC: a repeated first port restarts).
                    self.attempts.restart(id, now, variant);
                    self.actions.push_back(stage_event(1));
                } else if steps[stage - 1] == step {
                    // The step just matched, again: a retransmitted SYN.
                    tracing::trace!(src = %k.src, door = %door.name, stage, "repeat ignored");
                } else if let Some(v) = starts {
                    // Another sequence of the door starts here; one of a
                    // single step is complete at once (an attempt is only
                    // kept for sequences with more to come).
                    if door.live.variants[v as usize].sequence.len() == 1 {
                        self.attempts.remove(id);
                        self.actions.push_back(stage_event(1));
                        self.complete(d, v, k, now);
                    } else {
                        self.attempts.restart(id, now, v);
                        self.actions.push_back(stage_event(1));
                    }
                } else {
                    tracing::debug!(src = %k.src, door = %door.name, stage, "attempt broken");
                    self.attempts.remove(id);
                }
            }
            Err(vacant) => {
                let Some(v) = starts else { return };
                let name = door.name.clone();
                let single = door.live.variants[v as usize].sequence.len() == 1;
                if !single {
                    match self.attempts.insert(vacant, now, v) {
                        Insert::Added => {}
                        Insert::Evicted { src, door } => {
                            tracing::debug!(%src, door, "stage-1 attempt evicted");
                            self.note_eviction(now);
                        }
                        Insert::Refused => {
                            // Not tracked, so not logged as a stage either.
                            tracing::debug!(src = %k.src, door = %name, "table full of progress");
                            self.note_eviction(now);
                            return;
                        }
                    }
                }
                self.actions.push_back(Action::Log(Event::Stage {
                    src: k.src,
                    door: name,
                    stage: 1,
                }));
                if single {
                    self.complete(d, v, k, now);
                }
            }
        }
    }

    fn fire_stop(&mut self, stop: PendingStop) {
        self.actions.push_back(Action::Log(Event::CommandTimeout {
            src: stop.src,
            door: stop.name.clone(),
        }));
        self.actions.push_back(Action::Run(Command {
            door: stop.door,
            name: stop.name,
            src: stop.src,
            kind: CommandKind::Stop,
            command: stop.command,
            open: stop.open,
        }));
    }

    fn note_eviction(&mut self, now: Timestamp) {
        self.stats.evicted += 1;
        self.evicted_unreported += 1;
        if self.eviction_report_due.is_none() {
            let earliest = self
                .last_eviction_report
                .map_or(now, |last| last + EVICTION_REPORT_INTERVAL);
            self.eviction_report_due = Some(earliest.max(now));
        }
    }

    /// The earliest timer and what it is. O(doors).
    fn next_timer(&self) -> Option<(Timestamp, Timer)> {
        let mut best: Option<(Timestamp, Timer)> = None;
        let mut consider = |at: Timestamp, timer: Timer| {
            if best.is_none_or(|(b, _)| at < b) {
                best = Some((at, timer));
            }
        };
        if let Some(at) = self.stops.next_due() {
            consider(at, Timer::Stop);
        }
        for (d, door) in self.doors.iter().enumerate() {
            if let Some(id) = self.attempts.oldest(d as u16) {
                consider(
                    self.attempts.get(id).start + door.config.seq_timeout,
                    Timer::Attempt(d as u16),
                );
            }
        }
        if let Some(at) = self.eviction_report_due {
            consider(at, Timer::EvictionReport);
        }
        best
    }

    fn rebuild_ports(&mut self) {
        self.ports = vec![0u64; 2 * 65536 / 64];
        for door in &self.doors {
            for v in &door.live.variants {
                for s in v.sequence.steps() {
                    let bit = port_bit(s.proto, s.port);
                    self.ports[bit / 64] |= 1 << (bit % 64);
                }
            }
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Timer {
    Attempt(u16),
    Stop,
    EvictionReport,
}

#[inline]
fn port_bit(proto: Proto, port: u16) -> usize {
    (proto as usize) * 65536 + port as usize
}

#[cfg(test)]
mod tests;
