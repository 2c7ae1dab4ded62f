//! The small enumerations of an order: side, location type, market and status.
//!
//! Each parses case-insensitively from the original system's spelling and serialises in upper case, as
//! the original API wrote them. The legal status transitions are a table ([`TRANSITIONS`]),
//! not code scattered over handlers.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::{fmt, str::FromStr};

/// An unknown spelling of one of the enumerations.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{value}' is not a valid {kind}; expected one of {expected}")]
pub struct UnknownVariant {
    /// Which enumeration was being read.
    pub kind: &'static str,
    /// What was given.
    pub value: String,
    /// The accepted spellings.
    pub expected: &'static str,
}

macro_rules! text_enum {
    ($(#[$doc:meta])* $name:ident, $kind:literal, { $($(#[$vdoc:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
        pub enum $name {
            $($(#[$vdoc])*
            #[cfg_attr(feature = "utoipa", schema(rename = $text))]
            $variant),+
        }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The canonical upper-case spelling, as stored and served.
            pub const fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl FromStr for $name {
            type Err = UnknownVariant;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                $(if s.trim().eq_ignore_ascii_case($text) { return Ok($name::$variant); })+
                Err(UnknownVariant {
                    kind: $kind,
                    value: s.to_string(),
                    expected: concat!($($text, " "),+),
                })
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = std::borrow::Cow::<str>::deserialize(d)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

text_enum!(
    /// Whether the order buys or sells energy.
    Side, "side", {
        /// Buys energy: gains when the real-time price ends above the limit.
        Buy => "BUY",
        /// Sells energy: gains when the real-time price ends below the limit.
        Sell => "SELL",
    }
);

text_enum!(
    /// The kind of pricing location.
    LocationType, "location_type", {
        /// A trading hub.
        Hub => "HUB",
        /// A load zone (the original system's default).
        Zone => "ZONE",
        /// A generator bus.
        Gen => "GEN",
        /// Any other pricing node.
        Node => "NODE",
    }
);

text_enum!(
    /// The market an order is placed in; the simulator only knows day-ahead.
    Market, "market", {
        /// Day-ahead.
        Da => "DA",
    }
);

text_enum!(
    /// Where an order is in its life.
    OrderStatus, "status", {
        /// Waiting for its due time.
        Pending => "PENDING",
        /// Moderated and accepted at a real-time LMP.
        Approved => "APPROVED",
        /// Moderated and refused with a market reason.
        Rejected => "REJECTED",
        /// Withdrawn before moderation.
        Cancelled => "CANCELLED",
        /// An approved order that settled (the original system's settlement state).
        Cleared => "CLEARED",
        /// An approved order that did not fill (the original system's settlement state).
        Unfilled => "UNFILLED",
    }
);

impl Side {
    /// `+1` for a buy, `-1` for a sell: the sign of P&L when the price rises.
    pub const fn sign(self) -> i64 {
        match self {
            Side::Buy => 1,
            Side::Sell => -1,
        }
    }
}

/// Every legal status change. Anything not listed is refused.
pub const TRANSITIONS: &[(OrderStatus, OrderStatus)] = &[
    (OrderStatus::Pending, OrderStatus::Approved),
    (OrderStatus::Pending, OrderStatus::Rejected),
    (OrderStatus::Pending, OrderStatus::Cancelled),
    (OrderStatus::Approved, OrderStatus::Cleared),
    (OrderStatus::Approved, OrderStatus::Unfilled),
];

/// A status change that [`TRANSITIONS`] does not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("cannot change an order from {from} to {to}")]
pub struct StatusTransitionError {
    /// The current status.
    pub from: OrderStatus,
    /// The status asked for.
    pub to: OrderStatus,
}

impl OrderStatus {
    /// Whether the order still waits for moderation (an "open" position in the original system's terms).
    pub const fn is_open(self) -> bool {
        matches!(self, OrderStatus::Pending)
    }

    /// Whether the order was approved (and so carries an LMP and a P&L).
    pub const fn is_approved(self) -> bool {
        matches!(self, OrderStatus::Approved | OrderStatus::Cleared)
    }

    /// Checks a change of status against [`TRANSITIONS`].
    pub fn check_transition(self, to: OrderStatus) -> Result<(), StatusTransitionError> {
        if TRANSITIONS.contains(&(self, to)) {
            Ok(())
        } else {
            Err(StatusTransitionError { from: self, to })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_case_insensitively_and_prints_upper_case() {
        assert_eq!("buy".parse::<Side>(), Ok(Side::Buy));
        assert_eq!(" Sell ".parse::<Side>(), Ok(Side::Sell));
        assert_eq!("zone".parse::<LocationType>(), Ok(LocationType::Zone));
        assert_eq!(OrderStatus::Cancelled.to_string(), "CANCELLED");
        let err = "HOLD"
            .parse::<Side>()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("BUY") && err.contains("HOLD"), "{err}");
    }

    #[test]
    fn only_listed_transitions_are_legal() {
        use OrderStatus::*;
        let mut legal = 0;
        for &from in OrderStatus::ALL {
            for &to in OrderStatus::ALL {
                let ok = from.check_transition(to).is_ok();
                assert_eq!(ok, TRANSITIONS.contains(&(from, to)), "{from} -> {to}");
                legal += usize::from(ok);
            }
        }
        assert_eq!(legal, TRANSITIONS.len());
        assert!(Approved.check_transition(Pending).is_err());
        assert!(Rejected.check_transition(Approved).is_err());
        assert!(Pending.check_transition(Pending).is_err());
    }
}
