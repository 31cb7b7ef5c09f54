//! Enums whose values have names in YAML files, tables and file names: the one way those
//! names are produced ([`named_enum!`]).

/// Defines a fieldless enum whose variants each carry the one name used for them
/// everywhere: `ALL`, `NAMES`, `name()`, `Display`, `FromStr` and serde (a YAML value is
/// the name; an unknown one is refused with the list of allowed names).
#[macro_export]
macro_rules! named_enum {
    ($(#[$meta:meta])* $vis:vis enum $name:ident {
        $($(#[$vmeta:meta])* $variant:ident = $text:literal),+ $(,)?
    }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        $vis enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            /// Every name, in declaration order.
            pub const NAMES: &'static [&'static str] = &[$($text),+];

            /// The name used in YAML files, tables and file names.
            pub fn name(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.name())
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = String;

            fn from_str(s: &str) -> ::std::result::Result<Self, String> {
                Self::ALL.iter().copied().find(|v| v.name() == s).ok_or_else(|| {
                    format!("unknown value `{s}`, expected one of {}", $crate::names::listing(Self::NAMES))
                })
            }
        }

        impl ::serde::Serialize for $name {
            fn serialize<S: ::serde::Serializer>(&self, s: S) -> ::std::result::Result<S::Ok, S::Error> {
                s.serialize_str(self.name())
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $name {
            fn deserialize<D: ::serde::Deserializer<'de>>(d: D) -> ::std::result::Result<Self, D::Error> {
                struct Names;
                impl ::serde::de::Visitor<'_> for Names {
                    type Value = $name;
                    fn expecting(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                        write!(f, "one of {}", $crate::names::listing($name::NAMES))
                    }
                    // Refused inside the visitor, so the error carries the value's position.
                    fn visit_str<E: ::serde::de::Error>(self, s: &str) -> ::std::result::Result<$name, E> {
                        $name::ALL
                            .iter()
                            .copied()
                            .find(|v| v.name() == s)
                            .ok_or_else(|| E::unknown_variant(s, $name::NAMES))
                    }
                }
                d.deserialize_str(Names)
            }
        }
    };
}

/// `` `a`, `b`, `c` ``: allowed names as serde lists them.
pub fn listing(names: &[&str]) -> String {
    names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    crate::named_enum! {
        /// A test enum.
        enum Fruit {
            /// One.
            Apple = "apple",
            /// Two.
            BloodOrange = "blood_orange",
        }
    }

    #[test]
    fn names_round_trip_through_every_form() {
        assert_eq!(Fruit::NAMES, ["apple", "blood_orange"]);
        for &f in Fruit::ALL {
            assert_eq!(f.name().parse::<Fruit>().unwrap(), f);
            assert_eq!(f.to_string(), f.name());
            let yaml = serde_yaml_ng::to_string(&f).unwrap();
            assert_eq!(yaml.trim(), f.name());
            assert_eq!(serde_yaml_ng::from_str::<Fruit>(&yaml).unwrap(), f);
        }
    }

    #[test]
    fn unknown_names_are_refused_with_the_allowed_ones() {
        let err = "pear".parse::<Fruit>().unwrap_err();
        assert_eq!(err, "unknown value `pear`, expected one of `apple`, `blood_orange`");
        let err = serde_yaml_ng::from_str::<Fruit>("pear").unwrap_err().to_string();
        assert!(
            // serde's wording: "expected `a` or `b`" for two, "expected one of `a`, `b`, `c`" beyond.
            err.contains("unknown variant `pear`, expected `apple` or `blood_orange`"),
            "{err}"
        );
        assert!(serde_yaml_ng::from_str::<Fruit>("3").is_err());
    }
}
