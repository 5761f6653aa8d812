//! The receiver's one-line answer to each frame, sent back on the same channel.
//!
//! Format (ASCII, one line, `\n`-terminated):
//! ```text
//! ack <stored name> <payload bytes>
//! nack <reason, free text without newlines>
//! ```

use alloc::format;
use alloc::string::{String, ToString};

/// The receiver's answer to one frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// The object was stored under `name`.
    Stored {
        /// The name the object's cell was stored under (e.g. `greeting_v2@2`).
        name: String,
        /// The payload's length in bytes.
        bytes: usize,
    },
    /// The frame or its object was rejected; nothing was stored.
    Rejected {
        /// Why (one line).
        reason: String,
    },
}

impl Reply {
    /// The reply as its line, with the `\n` (newlines in a reason become spaces).
    pub fn to_line(&self) -> String {
        match self {
            Reply::Stored { name, bytes } => format!("ack {name} {bytes}\n"),
            Reply::Rejected { reason } => format!("nack {}\n", reason.replace(['\n', '\r'], " ")),
        }
    }

    /// Parses one reply line (with or without its line ending); `None` if it is not a reply.
    pub fn parse(line: &str) -> Option<Reply> {
        let line = line.trim_end_matches(['\n', '\r']);
        if let Some(rest) = line.strip_prefix("ack ") {
            let (name, bytes) = rest.split_once(' ')?;
            let bytes = bytes.parse().ok()?;
            return (!name.is_empty()).then(|| Reply::Stored { name: name.to_string(), bytes });
        }
        line.strip_prefix("nack ").map(|reason| Reply::Rejected { reason: reason.to_string() })
    }
}
