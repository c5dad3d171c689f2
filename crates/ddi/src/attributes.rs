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
/// sha256 of the image in the slot the device runs, when it is the committed release (what a
/// delta patch's base names). Absent when the device does not know it (a factory image without
/// a committed record, or a trial boot).
pub const RUNNING_IMAGE_SHA256: &str = "running_image_sha256";
/// The delta patches the device can apply: [`DELTA_KNOWN_BASE`]. A server offers a patch only
/// to a device that reports this (our DDI extension, docs/server.md).
pub const ACCEPTS_DELTA: &str = "accepts_delta";
/// Value of [`ACCEPTS_DELTA`]: patches made against a known base image (`.rudelta`).
pub const DELTA_KNOWN_BASE: &str = "known-base";
