//! The CMOS real-time clock: the wall-clock date and time.
//!
//! # Purpose
//! The shell's `date` reads the PC's battery-backed clock. The clock's registers are reached through an index port
//! (0x70) and a data port (0x71); their format depends on status register B: bit 2 set means binary values
//! (otherwise BCD), bit 1 set means a 24-hour clock (otherwise 12-hour, with bit 7 of the hour register meaning PM).
//!
//! # Key types
//! [`RawTime`] (the registers as read), [`DateTime`] (decoded), [`decode`] (pure, host-tested), [`read`] (hardware).
//!
//! # Control flow of [`read`]
//! 1. wait while status register A's update-in-progress bit (7) is set;
//! 2. read every register; repeat 1-2 until two readings in a row agree (an update may start between them);
//! 3. decode with status register B's format bits.
//!
//! The century register is not standard (its index comes from ACPI's FADT), so years are taken as 2000-2099.
#![cfg_attr(not(test), no_std)]

use core::fmt;

/// Register indexes of the CMOS clock.
mod register {
    pub const SECONDS: u8 = 0x00;
    pub const MINUTES: u8 = 0x02;
    pub const HOURS: u8 = 0x04;
    pub const DAY: u8 = 0x07;
    pub const MONTH: u8 = 0x08;
    pub const YEAR: u8 = 0x09;
    pub const STATUS_A: u8 = 0x0a;
    pub const STATUS_B: u8 = 0x0b;
}

/// Status register B bit 1: the hour register counts 0-23 (otherwise 1-12 with bit 7 meaning PM).
const STATUS_B_24_HOUR: u8 = 1 << 1;
/// Status register B bit 2: values are binary (otherwise BCD).
const STATUS_B_BINARY: u8 = 1 << 2;
/// Status register A bit 7: an update is in progress; the time registers may be inconsistent.
const STATUS_A_UPDATE_IN_PROGRESS: u8 = 1 << 7;
/// The hour register's PM flag in 12-hour mode.
const HOUR_PM: u8 = 1 << 7;
/// The number of readings [`read`] tries before giving up on two consecutive equal ones.
const MAX_READINGS: u32 = 16;

/// The clock's registers as read, before decoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawTime {
    /// Register 0x00.
    pub seconds: u8,
    /// Register 0x02.
    pub minutes: u8,
    /// Register 0x04 (in 12-hour mode, bit 7 is PM).
    pub hours: u8,
    /// Register 0x07: day of month.
    pub day: u8,
    /// Register 0x08.
    pub month: u8,
    /// Register 0x09: year within the century.
    pub year: u8,
    /// Status register B (format bits).
    pub status_b: u8,
}

/// A decoded date and time (the clock's own time zone, usually UTC under QEMU).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateTime {
    /// 2000..=2099.
    pub year: u16,
    /// 1..=12.
    pub month: u8,
    /// 1..=31.
    pub day: u8,
    /// 0..=23.
    pub hour: u8,
    /// 0..=59.
    pub minute: u8,
    /// 0..=59 (60 is accepted for a leap second).
    pub second: u8,
}

impl fmt::Display for DateTime {
    /// ISO 8601: `2026-12-02 15:04:05`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }
}

/// Why registers could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// A BCD register holds a nibble above 9.
    NotBcd {
        /// Which field.
        field: &'static str,
        /// The register's value.
        value: u8,
    },
    /// A decoded field is outside its range.
    OutOfRange {
        /// Which field.
        field: &'static str,
        /// The decoded value.
        value: u8,
    },
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::NotBcd { field, value } => write!(f, "{field} register {value:#04x} is not BCD"),
            DecodeError::OutOfRange { field, value } => write!(f, "{field} {value} is out of range"),
        }
    }
}

/// Why [`read`] failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadError {
    /// No two consecutive readings agreed in [`MAX_READINGS`] tries (the clock keeps changing or is absent).
    Unstable {
        /// The number of readings taken.
        readings: u32,
    },
    /// The registers do not decode.
    Decode(DecodeError),
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::Unstable { readings } => write!(f, "no two of {readings} clock readings agreed"),
            ReadError::Decode(error) => write!(f, "{error}"),
        }
    }
}

/// Decodes one register in the format of `status_b`, checking `low..=high`.
fn field(name: &'static str, value: u8, status_b: u8, low: u8, high: u8) -> Result<u8, DecodeError> {
    let decoded = if status_b & STATUS_B_BINARY != 0 {
        value
    } else {
        let (tens, ones) = (value >> 4, value & 0x0f);
        if tens > 9 || ones > 9 {
            return Err(DecodeError::NotBcd { field: name, value });
        }
        tens * 10 + ones
    };
    if (low..=high).contains(&decoded) {
        Ok(decoded)
    } else {
        Err(DecodeError::OutOfRange { field: name, value: decoded })
    }
}

/// Decodes the hour register: 24-hour as is; 12-hour with 12 AM as 0 and PM adding 12 (12 PM stays 12).
fn hour(value: u8, status_b: u8) -> Result<u8, DecodeError> {
    if status_b & STATUS_B_24_HOUR != 0 {
        return field("hour", value, status_b, 0, 23);
    }
    let twelve_hour = field("hour", value & !HOUR_PM, status_b, 1, 12)?;
    let pm = value & HOUR_PM != 0;
    Ok(match (twelve_hour, pm) {
        (12, false) => 0,
        (12, true) => 12,
        (hour, false) => hour,
        (hour, true) => hour + 12,
    })
}

/// Decodes the clock's registers.
///
/// # Errors
/// [`DecodeError::NotBcd`] for a BCD register with a nibble above 9, [`DecodeError::OutOfRange`] for a value outside
/// its field's range (e.g. month 13, or hour 0 on a 12-hour clock).
pub fn decode(raw: &RawTime) -> Result<DateTime, DecodeError> {
    let format = raw.status_b;
    Ok(DateTime {
        year: 2000 + u16::from(field("year", raw.year, format, 0, 99)?),
        month: field("month", raw.month, format, 1, 12)?,
        day: field("day", raw.day, format, 1, 31)?,
        hour: hour(raw.hours, format)?,
        minute: field("minute", raw.minutes, format, 0, 59)?,
        second: field("second", raw.seconds, format, 0, 60)?,
    })
}

/// Reads one CMOS register.
fn read_register(index: u8) -> u8 {
    use x86_64::instructions::port::Port;
    let mut index_port: Port<u8> = Port::new(0x70);
    let mut data_port: Port<u8> = Port::new(0x71);
    // Ports 0x70/0x71 are the PC's CMOS index and data ports; selecting a clock register (below 0x0e, bit 7 clear
    // so NMIs stay enabled) and reading it has no side effect but the read. Callers are the shell's `date`, which
    // runs in one task; a concurrent reader could only swap the index between our two accesses, which the caller's
    // "two equal readings" check catches.
    // SAFETY: side-effect-free accesses to the CMOS clock ports (see above).
    unsafe {
        index_port.write(index);
        data_port.read()
    }
}

/// Reads every register once, after waiting out an update in progress.
fn read_raw() -> RawTime {
    while read_register(register::STATUS_A) & STATUS_A_UPDATE_IN_PROGRESS != 0 {
        core::hint::spin_loop();
    }
    RawTime {
        seconds: read_register(register::SECONDS),
        minutes: read_register(register::MINUTES),
        hours: read_register(register::HOURS),
        day: read_register(register::DAY),
        month: read_register(register::MONTH),
        year: read_register(register::YEAR),
        status_b: read_register(register::STATUS_B),
    }
}

/// Reads the current date and time from the CMOS clock.
///
/// # Errors
/// [`ReadError::Unstable`] if no two consecutive readings agree, [`ReadError::Decode`] if the registers are invalid.
pub fn read() -> Result<DateTime, ReadError> {
    let mut previous = read_raw();
    for readings in 2..=MAX_READINGS {
        let current = read_raw();
        if current == previous {
            return decode(&current).map_err(ReadError::Decode);
        }
        previous = current;
        if readings == MAX_READINGS {
            break;
        }
    }
    Err(ReadError::Unstable { readings: MAX_READINGS })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(status_b: u8, hours: u8) -> RawTime {
        RawTime { seconds: 0x05, minutes: 0x04, hours, day: 0x02, month: 0x12, year: 0x26, status_b }
    }

    #[test]
    fn bcd_24_hour() {
        let time = decode(&raw(STATUS_B_24_HOUR, 0x15)).unwrap();
        assert_eq!(time, DateTime { year: 2026, month: 12, day: 2, hour: 15, minute: 4, second: 5 });
        assert_eq!(std::format!("{time}"), "2026-12-02 15:04:05");
    }

    #[test]
    fn binary_24_hour() {
        let registers = RawTime { seconds: 59, minutes: 30, hours: 23, day: 31, month: 1, year: 99, status_b: 0x06 };
        assert_eq!(
            decode(&registers).unwrap(),
            DateTime { year: 2099, month: 1, day: 31, hour: 23, minute: 30, second: 59 }
        );
    }

    #[test]
    fn twelve_hour_bcd() {
        assert_eq!(decode(&raw(0, 0x12)).unwrap().hour, 0, "12 AM is midnight");
        assert_eq!(decode(&raw(0, 0x80 | 0x12)).unwrap().hour, 12, "12 PM is noon");
        assert_eq!(decode(&raw(0, 0x80 | 0x03)).unwrap().hour, 15);
        assert_eq!(decode(&raw(0, 0x11)).unwrap().hour, 11);
        assert_eq!(decode(&raw(0, 0x00)), Err(DecodeError::OutOfRange { field: "hour", value: 0 }));
    }

    #[test]
    fn twelve_hour_binary() {
        let registers =
            RawTime { seconds: 0, minutes: 0, hours: 0x80 | 11, day: 2, month: 12, year: 26, status_b: 0x04 };
        assert_eq!(decode(&registers).map(|time| time.hour), Ok(23));
    }

    #[test]
    fn rejects_bad_registers() {
        let mut registers = raw(STATUS_B_24_HOUR, 0x15);
        registers.month = 0x1a;
        assert_eq!(decode(&registers), Err(DecodeError::NotBcd { field: "month", value: 0x1a }));
        registers.month = 0x13;
        assert_eq!(decode(&registers), Err(DecodeError::OutOfRange { field: "month", value: 13 }));
        registers.month = 0x00;
        assert!(decode(&registers).is_err());
    }
}
