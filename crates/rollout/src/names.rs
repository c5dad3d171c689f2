//! One naming for text and JSON: the enums that are shown (rollout and action states, commands)
//! are declared through [`named_enum!`], which gives each the same kebab-case name in `as_str()`,
//! `Display`, `FromStr` and serde. It does not cover enums with data (`Threshold`, `Decision`).

/// A name that is not one of an enum's names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {value:?}, expected one of: {}", expected.join(", "))]
pub struct ParseNameError {
    /// What was parsed: "rollout state", "command", "action state".
    pub what: &'static str,
    /// The text given, cut at [`MAX_ECHO_LEN`] characters.
    pub value: String,
    pub expected: &'static [&'static str],
}

/// Longest piece of invalid input an error repeats, in characters.
pub const MAX_ECHO_LEN: usize = 64;

/// `text` cut to [`MAX_ECHO_LEN`] characters, for an error message.
pub(crate) fn echo(text: &str) -> String {
    text.chars().take(MAX_ECHO_LEN).collect()
}

impl ParseNameError {
    pub(crate) fn new(
        what: &'static str,
        value: &str,
        expected: &'static [&'static str],
    ) -> ParseNameError {
        ParseNameError {
            what,
            value: echo(value),
            expected,
        }
    }
}

/// Declares a fieldless enum with `ALL`, `NAMES`, `as_str()`, `Display`, `FromStr` and serde
/// `rename_all = "kebab-case"`. The text given for each variant must be its kebab-case name; the
/// tests of each module check that serde and `Display` agree for every variant.
macro_rules! named_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident ($what:literal) {
            $( $(#[$vmeta:meta])* $variant:ident => $text:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        #[serde(rename_all = "kebab-case")]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
        }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            /// Every name, in declaration order.
            pub const NAMES: &'static [&'static str] = &[$($text),+];

            /// The kebab-case name, as in JSON.
            pub fn as_str(self) -> &'static str {
                match self {
                    $( $name::$variant => $text, )+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::names::ParseNameError;

            fn from_str(s: &str) -> Result<$name, Self::Err> {
                match s {
                    $( $text => Ok($name::$variant), )+
                    _ => Err($crate::names::ParseNameError::new($what, s, $name::NAMES)),
                }
            }
        }
    };
}

pub(crate) use named_enum;
