//! An in-memory implementation of every seam of `rustupdate-core`, assembled into one simulated
//! device ([`Sim`]) whose bootloader applies [`bootloader_boot`], the contract's own rule.
//!
//! Durable writes (bootloader environment, state, the end of an image write) go through one
//! [`Power`] switch, so that a test can cut the power before any of them and boot again. What it
//! does not simulate: partial writes inside one durable write (the adapters make each atomic and
//! the client's subprocess tests cut inside them), corrupt bytes (the codecs' tests do), timing.

use rustupdate_core::boot::bootloader_boot;
use rustupdate_core::hooks::{Context, HookError, HookEvent};
use rustupdate_core::seams::{Clock, HealthChecks, Hooks, ImageSink, Reboot, Seams, SlotTargets};
use rustupdate_core::state::Loaded;
use rustupdate_core::{BootControl, BootEnv, Error, SlotId, State, StateStore, Updater};
use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

/// Counts durable writes and cuts the power before a chosen one: that write and every later one
/// fails (the process is dead) until [`Power::restore`].
#[derive(Debug, Clone, Default)]
pub struct Power {
    writes: Rc<Cell<u64>>,
    cut_before: Rc<Cell<Option<u64>>>,
    off: Rc<Cell<bool>>,
}

impl Power {
    /// Cuts the power before the `n`-th durable write from now (1 = the next one).
    pub fn cut_before(&self, n: u64) {
        self.cut_before.set(Some(self.writes.get() + n));
    }

    /// Durable writes done so far.
    pub fn writes(&self) -> u64 {
        self.writes.get()
    }

    pub fn is_off(&self) -> bool {
        self.off.get()
    }

    /// An independent switch in the same position (a clone shares the switch).
    fn copy(&self) -> Power {
        Power {
            writes: Rc::new(Cell::new(self.writes.get())),
            cut_before: Rc::new(Cell::new(self.cut_before.get())),
            off: Rc::new(Cell::new(self.off.get())),
        }
    }

    /// Power is back: writes work again and no cut is armed.
    pub fn restore(&self) {
        self.off.set(false);
        self.cut_before.set(None);
    }

    /// Called before each durable write: `Err` means the write did not happen.
    fn durable_write(&self, what: &'static str) -> Result<(), Error> {
        if !self.off.get() && self.cut_before.get() == Some(self.writes.get() + 1) {
            self.off.set(true);
        }
        if self.off.get() {
            return Err(Error::adapter(what, "simulated power cut"));
        }
        self.writes.set(self.writes.get() + 1);
        Ok(())
    }
}

/// The bootloader environment.
#[derive(Debug, Clone)]
pub struct MemBoot {
    pub env: BootEnv,
    /// Set: `load` fails with this message.
    pub broken: Option<String>,
    power: Power,
}

impl BootControl for MemBoot {
    fn load(&mut self) -> Result<BootEnv, Error> {
        match &self.broken {
            Some(why) => Err(Error::adapter("bootloader environment", why.clone())),
            None => Ok(self.env),
        }
    }

    fn store(&mut self, env: &BootEnv) -> Result<(), Error> {
        self.power.durable_write("bootloader environment")?;
        self.env = *env;
        Ok(())
    }
}

/// The state store. `stored: None` is a device without a state file.
#[derive(Debug, Clone)]
pub struct MemState {
    pub stored: Option<State>,
    /// Set: the next `load` finds the stored state unreadable (moved aside, as the file adapter
    /// does) and reports this.
    pub corrupt: Option<String>,
    power: Power,
}

impl StateStore for MemState {
    fn load(&mut self) -> Result<Loaded, Error> {
        if let Some(why) = self.corrupt.take() {
            self.stored = None;
            return Ok(Loaded {
                state: State::default(),
                recovered_from: Some(why),
            });
        }
        Ok(Loaded {
            state: self.stored.clone().unwrap_or_default(),
            recovered_from: None,
        })
    }

    fn store(&mut self, state: &State) -> Result<(), Error> {
        self.power.durable_write("state")?;
        self.stored = Some(state.clone());
        Ok(())
    }
}

/// Two slots of `capacity` bytes. Bytes land at once; `finish` is the durable write.
#[derive(Debug, Clone)]
pub struct MemSlots {
    pub a: Vec<u8>,
    pub b: Vec<u8>,
    pub capacity: u64,
    /// Set: this slot cannot be opened for writing.
    pub unwritable: Option<SlotId>,
    power: Power,
}

impl MemSlots {
    pub fn bytes(&self, slot: SlotId) -> &[u8] {
        match slot {
            SlotId::A => &self.a,
            SlotId::B => &self.b,
        }
    }

    /// The slot starts with exactly `image`.
    pub fn holds(&self, slot: SlotId, image: &[u8]) -> bool {
        self.bytes(slot).starts_with(image)
    }

    fn check_writable(&self, slot: SlotId) -> Result<(), Error> {
        if self.unwritable == Some(slot) {
            return Err(Error::adapter("slot", format!("slot {slot} is read-only")));
        }
        Ok(())
    }
}

struct MemSink<'a> {
    bytes: &'a mut Vec<u8>,
    power: Power,
}

impl MemSink<'_> {
    fn put(&mut self, offset: u64, len: u64) -> Result<&mut [u8], Error> {
        if self.power.is_off() {
            return Err(Error::adapter("slot", "simulated power cut"));
        }
        let (start, end) = (offset as usize, (offset + len) as usize);
        if end > self.bytes.len() {
            return Err(Error::adapter("slot", "write beyond the end of the slot"));
        }
        Ok(&mut self.bytes[start..end])
    }
}

impl ImageSink for MemSink<'_> {
    fn write(&mut self, offset: u64, data: &[u8]) -> Result<(), Error> {
        self.put(offset, data.len() as u64)?.copy_from_slice(data);
        Ok(())
    }

    fn write_zeros(&mut self, offset: u64, len: u64) -> Result<(), Error> {
        self.put(offset, len)?.fill(0);
        Ok(())
    }

    fn sync(&mut self) -> Result<(), Error> {
        self.power.durable_write("slot")
    }

    fn finish(&mut self) -> Result<(), Error> {
        self.power.durable_write("slot")
    }
}

impl SlotTargets for MemSlots {
    fn capacity(&mut self, _slot: SlotId) -> Result<u64, Error> {
        Ok(self.capacity)
    }

    fn open(&mut self, slot: SlotId) -> Result<Box<dyn ImageSink + '_>, Error> {
        self.check_writable(slot)?;
        let power = self.power.clone();
        let bytes = match slot {
            SlotId::A => &mut self.a,
            SlotId::B => &mut self.b,
        };
        Ok(Box::new(MemSink { bytes, power }))
    }

    fn probe_writable(&mut self, slot: SlotId) -> Result<(), Error> {
        self.check_writable(slot)
    }

    fn reader(&mut self, slot: SlotId) -> Result<Box<dyn std::io::Read + '_>, Error> {
        let bytes = match slot {
            SlotId::A => &self.a,
            SlotId::B => &self.b,
        };
        Ok(Box::new(&bytes[..]))
    }
}

/// Health checks with a fixed verdict; remembers what they were told. A `verdict` is the output
/// of a check that exits with status 1.
#[derive(Debug, Clone, Default)]
pub struct MemHealth {
    pub verdict: Option<String>,
    pub runs: Vec<Context>,
}

impl HealthChecks for MemHealth {
    fn run(&mut self, context: &Context) -> Result<(), HookError> {
        self.runs.push(context.clone());
        match &self.verdict {
            None => Ok(()),
            Some(output) => Err(exit_1("health", "mem-check", output)),
        }
    }
}

/// Hooks that record every event and fail (exit status 1) at the events in `failing`.
#[derive(Debug, Clone, Default)]
pub struct MemHooks {
    pub failing: Vec<HookEvent>,
    pub ran: Vec<HookEvent>,
}

impl Hooks for MemHooks {
    fn run(&mut self, event: HookEvent, _context: &Context) -> Result<(), HookError> {
        self.ran.push(event);
        if self.failing.contains(&event) {
            return Err(exit_1(event.name(), "mem-hook", "says no"));
        }
        Ok(())
    }
}

/// A script `script` at `event` that exited with status 1, printing `output`.
fn exit_1(event: &str, script: &str, output: &str) -> HookError {
    HookError::Failed {
        event: event.into(),
        script: script.into(),
        status: "exit status: 1".into(),
        output: output.into(),
    }
}

/// Remembers that a reboot was requested.
#[derive(Debug, Clone, Default)]
pub struct MemReboot {
    pub requested: bool,
}

impl Reboot for MemReboot {
    fn reboot(&mut self) -> Result<(), Error> {
        self.requested = true;
        Ok(())
    }
}

/// The uptime, set by the test; `None` makes reading it fail.
#[derive(Debug, Clone)]
pub struct MemClock {
    pub uptime: Option<Duration>,
}

impl Clock for MemClock {
    fn uptime(&mut self) -> Result<Duration, Error> {
        self.uptime
            .ok_or_else(|| Error::adapter("uptime", "the clock is broken"))
    }
}

/// A whole simulated device: slot A holds `factory` and is committed, slot B holds filler, the
/// bootloader boots A with the default bootlimit. A clone is an independent device in the same
/// condition (with its own power switch).
#[derive(Debug)]
pub struct Sim {
    pub device_type: String,
    pub booted: SlotId,
    pub boot: MemBoot,
    pub state: MemState,
    pub slots: MemSlots,
    pub health: MemHealth,
    pub hooks: MemHooks,
    pub reboot: MemReboot,
    pub clock: MemClock,
    pub power: Power,
}

impl Sim {
    pub fn new(device_type: &str, factory: &[u8], capacity: u64) -> Sim {
        let power = Power::default();
        let mut a = factory.to_vec();
        a.resize(capacity as usize, 0);
        Sim {
            device_type: device_type.into(),
            booted: SlotId::A,
            boot: MemBoot {
                env: BootEnv::committed(SlotId::A, rustupdate_core::boot::DEFAULT_BOOTLIMIT),
                broken: None,
                power: power.clone(),
            },
            state: MemState {
                stored: None,
                corrupt: None,
                power: power.clone(),
            },
            slots: MemSlots {
                a,
                b: vec![0xee; capacity as usize],
                capacity,
                unwritable: None,
                power: power.clone(),
            },
            health: MemHealth::default(),
            hooks: MemHooks::default(),
            reboot: MemReboot::default(),
            clock: MemClock {
                uptime: Some(Duration::ZERO),
            },
            power,
        }
    }

    fn rewire(mut self, power: Power) -> Sim {
        self.boot.power = power.clone();
        self.state.power = power.clone();
        self.slots.power = power.clone();
        self.power = power;
        self
    }

    pub fn seams(&mut self) -> Seams<'_> {
        Seams {
            boot: &mut self.boot,
            state: &mut self.state,
            slots: &mut self.slots,
            health: &mut self.health,
            hooks: &mut self.hooks,
            reboot: &mut self.reboot,
            clock: &mut self.clock,
        }
    }

    /// An updater over this device, as the client creates one per command.
    pub fn updater(&mut self) -> Result<Updater<'_>, Error> {
        let (device_type, booted) = (self.device_type.clone(), self.booted);
        Updater::new(&device_type, booted, self.seams())
    }

    /// Power back on (if it was cut) and one boot: the bootloader applies its rule to the
    /// environment, the kernel reports the slot it booted, the uptime starts at zero.
    pub fn boot(&mut self) -> SlotId {
        self.power.restore();
        let (next, slot) = bootloader_boot(&self.boot.env);
        self.boot.env = next;
        self.booted = slot;
        self.reboot.requested = false;
        self.clock.uptime = Some(Duration::ZERO);
        slot
    }
}

impl Clone for Sim {
    fn clone(&self) -> Sim {
        let copy = Sim {
            device_type: self.device_type.clone(),
            booted: self.booted,
            boot: self.boot.clone(),
            state: self.state.clone(),
            slots: self.slots.clone(),
            health: self.health.clone(),
            hooks: self.hooks.clone(),
            reboot: self.reboot.clone(),
            clock: self.clock.clone(),
            power: self.power.clone(),
        };
        copy.rewire(self.power.copy())
    }
}
