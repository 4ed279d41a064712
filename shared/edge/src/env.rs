//! What a step needs from outside — the order store, the owed-work index, the event bus, the
//! clock and fresh ids — as one [`Env`], so every function and every test wires the same
//! thing: [`SpinEnv`] in a component, [`MemEnv`] in native tests, and [`FaultyEnv`] around
//! either to fail or abort at the Nth I/O call (fault-injection tests).

use std::cell::{Cell, RefCell};

use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

use crate::bus::{Bus, MemBus, SpinBus};
use crate::kv::{Kv, KvError, MemKv, SpinKv};
use crate::problem::FunctionError;

/// Label of the key-value store holding the owed-work index (see `step`): small by design —
/// one entry per order that still owes work — so the reconciler can list it whole.
pub const OWED_STORE: &str = "owed";

/// The world a step runs in.
pub trait Env {
    /// The key-value store type.
    type Kv: Kv;
    /// The event bus type.
    type Bus: Bus;
    /// The `default` store: orders, stock, catalog, idempotency keys.
    fn kv(&self) -> &Self::Kv;
    /// The owed-work index store ([`OWED_STORE`]).
    fn owed(&self) -> &Self::Kv;
    /// Where events are published (channel = event type).
    fn bus(&self) -> &Self::Bus;
    /// The current time.
    fn now(&self) -> DateTime<Utc>;
    /// A fresh id (events, index entries, returns).
    fn new_id(&self) -> Uuid;
}

/// The component's real world: Spin key-value stores, the Redis pub/sub bus, the wall clock.
pub struct SpinEnv {
    kv: SpinKv,
    owed: SpinKv,
    bus: SpinBus,
}

impl SpinEnv {
    /// Opens the `default` and [`OWED_STORE`] stores and the bus (`redis_address`).
    ///
    /// # Errors
    /// A 500 when a store is not granted or the bus variable is missing.
    pub fn open() -> Result<SpinEnv, FunctionError> {
        Ok(SpinEnv {
            kv: SpinKv::open_default()?,
            owed: SpinKv::open(OWED_STORE)?,
            bus: SpinBus::open().map_err(FunctionError::Internal)?,
        })
    }
}

impl Env for SpinEnv {
    type Kv = SpinKv;
    type Bus = SpinBus;
    fn kv(&self) -> &SpinKv {
        &self.kv
    }
    fn owed(&self) -> &SpinKv {
        &self.owed
    }
    fn bus(&self) -> &SpinBus {
        &self.bus
    }
    fn now(&self) -> DateTime<Utc> {
        crate::clock::now()
    }
    fn new_id(&self) -> Uuid {
        crate::clock::new_id()
    }
}

/// In-memory stores and bus with a settable clock and sequential ids, for native tests.
pub struct MemEnv {
    /// The `default` store.
    pub kv: MemKv,
    /// The owed-work index.
    pub owed: MemKv,
    /// Everything published.
    pub bus: MemBus,
    clock: Cell<DateTime<Utc>>,
    next_id: Cell<u128>,
}

impl Default for MemEnv {
    fn default() -> Self {
        MemEnv::new()
    }
}

impl MemEnv {
    /// Empty stores; the clock at 2026-01-01T00:00:00Z; ids from 1.
    pub fn new() -> MemEnv {
        MemEnv {
            kv: MemKv::new(),
            owed: MemKv::new(),
            bus: MemBus::default(),
            clock: Cell::new(DateTime::from_timestamp(1_767_225_600, 0).unwrap_or_default()),
            next_id: Cell::new(1),
        }
    }

    /// Moves the clock.
    pub fn advance(&self, by: Duration) {
        self.clock.set(self.clock.get() + by);
    }

    /// Sets the clock.
    pub fn set_now(&self, now: DateTime<Utc>) {
        self.clock.set(now);
    }

    /// The channels published so far, in order.
    pub fn published(&self) -> Vec<String> {
        self.bus
            .sent
            .borrow()
            .iter()
            .map(|(c, _)| c.clone())
            .collect()
    }
}

impl Env for MemEnv {
    type Kv = MemKv;
    type Bus = MemBus;
    fn kv(&self) -> &MemKv {
        &self.kv
    }
    fn owed(&self) -> &MemKv {
        &self.owed
    }
    fn bus(&self) -> &MemBus {
        &self.bus
    }
    fn now(&self) -> DateTime<Utc> {
        self.clock.get()
    }
    fn new_id(&self) -> Uuid {
        let n = self.next_id.get();
        self.next_id.set(n + 1);
        Uuid::from_u128(n)
    }
}

/// How an injected fault shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The call returns an error (an unreachable store, a refused publish).
    Error,
    /// The call panics: the guest is stopped mid-step (deadline, crash, `kill -9`).
    Abort,
}

/// Counts I/O calls and fails the one numbered `at` (from 1).
#[derive(Debug)]
pub struct FaultPlan {
    calls: Cell<u32>,
    at: Option<u32>,
    fault: Fault,
}

impl FaultPlan {
    /// Fail call number `at` (1-based) with `fault`; `None` never fails (counting only).
    pub fn new(at: Option<u32>, fault: Fault) -> FaultPlan {
        FaultPlan {
            calls: Cell::new(0),
            at,
            fault,
        }
    }

    /// How many I/O calls were made so far.
    pub fn calls(&self) -> u32 {
        self.calls.get()
    }

    /// Whether the fault has fired.
    pub fn fired(&self) -> bool {
        self.at.is_some_and(|at| self.calls.get() >= at)
    }

    fn tick(&self, what: &str) -> Result<(), String> {
        let n = self.calls.get() + 1;
        self.calls.set(n);
        if self.at == Some(n) {
            match self.fault {
                Fault::Error => return Err(format!("injected fault at I/O call {n} ({what})")),
                Fault::Abort => panic!("injected abort at I/O call {n} ({what})"),
            }
        }
        Ok(())
    }
}

/// A key-value store whose calls count against a [`FaultPlan`].
pub struct FaultyKv<'a, K: Kv> {
    inner: &'a K,
    plan: &'a FaultPlan,
}

impl<K: Kv> FaultyKv<'_, K> {
    fn tick(&self, what: &str) -> Result<(), KvError> {
        self.plan.tick(what).map_err(KvError::Store)
    }
}

impl<K: Kv> Kv for FaultyKv<'_, K> {
    type Cas = K::Cas;
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        self.tick("get")?;
        self.inner.get(key)
    }
    fn set(&self, key: &str, value: &[u8]) -> Result<(), KvError> {
        self.tick("set")?;
        self.inner.set(key, value)
    }
    fn delete(&self, key: &str) -> Result<(), KvError> {
        self.tick("delete")?;
        self.inner.delete(key)
    }
    fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, KvError> {
        self.tick("get_many")?;
        self.inner.get_many(keys)
    }
    fn read(&self, key: &str) -> Result<(Option<Vec<u8>>, Self::Cas), KvError> {
        self.tick("read")?;
        self.inner.read(key)
    }
    fn swap(&self, cas: Self::Cas, value: &[u8]) -> Result<bool, KvError> {
        self.tick("swap")?;
        self.inner.swap(cas, value)
    }
    fn keys(&self) -> Result<Vec<String>, KvError> {
        self.tick("keys")?;
        self.inner.keys()
    }
}

/// A bus whose publishes count against a [`FaultPlan`].
pub struct FaultyBus<'a, B: Bus> {
    inner: &'a B,
    plan: &'a FaultPlan,
}

impl<B: Bus> Bus for FaultyBus<'_, B> {
    fn publish(&self, channel: &str, payload: &[u8]) -> Result<(), String> {
        self.plan.tick("publish")?;
        self.inner.publish(channel, payload)
    }
}

/// Another [`Env`] whose every store and bus call counts against one [`FaultPlan`].
pub struct FaultyEnv<'a, E: Env> {
    inner: &'a E,
    kv: FaultyKv<'a, E::Kv>,
    owed: FaultyKv<'a, E::Kv>,
    bus: FaultyBus<'a, E::Bus>,
}

impl<'a, E: Env> FaultyEnv<'a, E> {
    /// The wrapped world (to build inputs from its clock and ids without counting I/O).
    pub fn inner(&self) -> &'a E {
        self.inner
    }

    /// Wraps `inner`, failing as `plan` says.
    pub fn new(inner: &'a E, plan: &'a FaultPlan) -> FaultyEnv<'a, E> {
        FaultyEnv {
            inner,
            kv: FaultyKv {
                inner: inner.kv(),
                plan,
            },
            owed: FaultyKv {
                inner: inner.owed(),
                plan,
            },
            bus: FaultyBus {
                inner: inner.bus(),
                plan,
            },
        }
    }
}

impl<'a, E: Env> Env for FaultyEnv<'a, E> {
    type Kv = FaultyKv<'a, E::Kv>;
    type Bus = FaultyBus<'a, E::Bus>;
    fn kv(&self) -> &Self::Kv {
        &self.kv
    }
    fn owed(&self) -> &Self::Kv {
        &self.owed
    }
    fn bus(&self) -> &Self::Bus {
        &self.bus
    }
    fn now(&self) -> DateTime<Utc> {
        self.inner.now()
    }
    fn new_id(&self) -> Uuid {
        self.inner.new_id()
    }
}

/// The fault-injection harness of every step's tests: runs `scenario` once on a clean
/// [`MemEnv`] to count its I/O calls, then once per call number and [`Fault`] kind with that
/// call failing (error) or aborting (panic, as a guest stopped at its deadline). After each
/// faulty run, `recover` runs on the same stores without faults — what the world does next:
/// the client's retry, the queue's redelivery, the reconciler — and `check` asserts the end
/// state (it gets a label naming the fault, for its messages). `setup` builds the stores
/// (catalog, stock …) before each run.
///
/// # Panics
/// When `check` does, or the clean run makes no I/O call.
pub fn for_every_fault(
    setup: impl Fn(&MemEnv),
    scenario: impl Fn(&FaultyEnv<'_, MemEnv>),
    recover: impl Fn(&MemEnv),
    check: impl Fn(&MemEnv, &str),
) {
    let clean = MemEnv::new();
    setup(&clean);
    let counting = FaultPlan::new(None, Fault::Error);
    scenario(&FaultyEnv::new(&clean, &counting));
    recover(&clean);
    check(&clean, "no fault");
    let calls = counting.calls();
    assert!(calls > 0, "the scenario made no I/O call");
    for fault in [Fault::Error, Fault::Abort] {
        for at in 1..=calls {
            let env = MemEnv::new();
            setup(&env);
            let plan = FaultPlan::new(Some(at), fault);
            let faulty = FaultyEnv::new(&env, &plan);
            let hook = std::panic::take_hook();
            std::panic::set_hook(Box::new(|_| {}));
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| scenario(&faulty)));
            std::panic::set_hook(hook);
            recover(&env);
            check(&env, &format!("{fault:?} at I/O call {at} of {calls}"));
        }
    }
}

/// A store that runs a race once, right after the first compare-and-swap read of a key
/// `which` accepts: another writer landing between a step's read and its swap.
pub struct RacingKv<'a, K: Kv> {
    inner: &'a K,
    which: Box<dyn Fn(&str) -> bool + 'a>,
    race: RefCell<Option<Box<dyn FnOnce() + 'a>>>,
}

impl<K: Kv> Kv for RacingKv<'_, K> {
    type Cas = K::Cas;
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        self.inner.get(key)
    }
    fn set(&self, key: &str, value: &[u8]) -> Result<(), KvError> {
        self.inner.set(key, value)
    }
    fn delete(&self, key: &str) -> Result<(), KvError> {
        self.inner.delete(key)
    }
    fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, KvError> {
        self.inner.get_many(keys)
    }
    fn read(&self, key: &str) -> Result<(Option<Vec<u8>>, Self::Cas), KvError> {
        let read = self.inner.read(key)?;
        if (self.which)(key) {
            let race = self.race.borrow_mut().take();
            if let Some(race) = race {
                race();
            }
        }
        Ok(read)
    }
    fn swap(&self, cas: Self::Cas, value: &[u8]) -> Result<bool, KvError> {
        self.inner.swap(cas, value)
    }
    fn keys(&self) -> Result<Vec<String>, KvError> {
        self.inner.keys()
    }
}

/// Another [`Env`] whose `default` store runs `race` once, right after the first
/// compare-and-swap read of a key `which` accepts (race tests: the race usually runs a
/// competing step on the inner world).
pub struct RacingEnv<'a, E: Env> {
    inner: &'a E,
    kv: RacingKv<'a, E::Kv>,
    owed: RacingKv<'a, E::Kv>,
}

impl<'a, E: Env> RacingEnv<'a, E> {
    /// Wraps `inner`.
    pub fn new(
        inner: &'a E,
        which: impl Fn(&str) -> bool + 'a,
        race: impl FnOnce() + 'a,
    ) -> RacingEnv<'a, E> {
        RacingEnv {
            inner,
            kv: RacingKv {
                inner: inner.kv(),
                which: Box::new(which),
                race: RefCell::new(Some(Box::new(race))),
            },
            owed: RacingKv {
                inner: inner.owed(),
                which: Box::new(|_| false),
                race: RefCell::new(None),
            },
        }
    }

    /// Whether the race has run.
    pub fn raced(&self) -> bool {
        self.kv.race.borrow().is_none()
    }
}

impl<'a, E: Env> Env for RacingEnv<'a, E> {
    type Kv = RacingKv<'a, E::Kv>;
    type Bus = E::Bus;
    fn kv(&self) -> &Self::Kv {
        &self.kv
    }
    fn owed(&self) -> &Self::Kv {
        &self.owed
    }
    fn bus(&self) -> &E::Bus {
        self.inner.bus()
    }
    fn now(&self) -> DateTime<Utc> {
        self.inner.now()
    }
    fn new_id(&self) -> Uuid {
        self.inner.new_id()
    }
}
