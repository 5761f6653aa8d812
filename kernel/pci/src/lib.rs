//! PCI enumeration: every function on every bus reachable from the host bridges, with its ids and class names.
//!
//! # Purpose
//! The shell's `machine` command lists the PCI devices (the `lspci` equivalent) so that a user reporting a boot on
//! new hardware shows what the machine has; drivers will later find their devices here. No state is kept: every
//! call scans configuration space again (a few hundred port accesses).
//!
//! # Key types
//! - [`PciAddress`] (bus:device.function), [`PciFunction`] (ids, class, header type), [`HeaderType`].
//! - [`ConfigSpace`]: how the scan reads configuration space; [`PortConfigSpace`] is configuration mechanism 1
//!   (PCI Local Bus Specification 3.0, 3.2.2.3.2: address to port 0xCF8, data through 0xCFC). ECAM (the MCFG
//!   table) is not used: mechanism 1 reaches the first 256 bytes of every function, all that enumeration reads.
//! - [`class_name`]: the PCI Code and ID Assignment Specification's class/subclass/programming-interface names.
//!
//! # Control flow of [`scan`]
//! 1. Read function 0 of device 0 on bus 0 (the host bridge). If it is multi-function, each of its functions
//!    with a vendor id is the host bridge of bus number = function number (PCI-to-PCI Bridge Architecture
//!    Specification 1.2 and the PCI BIOS convention); otherwise only bus 0 is a root.
//! 2. Scan a bus: for each of its 32 devices, read function 0 (vendor 0xFFFF: no device); if its header type
//!    has bit 7 set (multi-function), also functions 1-7.
//! 3. For every PCI-to-PCI bridge (header type 1), scan its secondary bus (offset 0x19) recursively, once per
//!    bus number (a bus already scanned, or bus 0, is skipped, so malformed bridges cannot loop).
#![cfg_attr(not(test), no_std)]

extern crate alloc;

mod class;
mod config;
mod scan;

pub use class::{class_name, programming_interface_name, subclass_name};
pub use config::{ConfigSpace, PortConfigSpace};
pub use scan::{HeaderType, PciAddress, PciFunction, scan, scan_with};
