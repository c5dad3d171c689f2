//! Inventory attribute names a rustupdate device reports with `PUT …/configData`. Other clients
//! report what they like; the server targets rollouts by [`DEVICE_TYPE`] and shows the others.

/// The device type the artifact's `compatible` list is matched against.
pub const DEVICE_TYPE: &str = "device_type";
/// Version of the artifact the device runs now (its committed or trial slot).
pub const RUNNING_VERSION: &str = "running_version";
/// Slot the device runs now: `a` or `b`.
pub const RUNNING_SLOT: &str = "running_slot";
/// Version held by slot a and slot b (empty when unknown).
pub const SLOT_A_VERSION: &str = "slot_a_version";
pub const SLOT_B_VERSION: &str = "slot_b_version";
/// Version of the rustupdate client.
pub const CLIENT_VERSION: &str = "client_version";
/// The running version once more, under the name gooseBit keeps as the device's software
/// version (it clears that when a `configData` lacks it).
pub const SW_VERSION: &str = "sw_version";
