//! Human rendering helpers shared by `check` and `gpus`: ANSI colour only when stdout is a terminal
//! and `NO_COLOR` is unset (`report::use_colour` decides).

/// Whether to colour output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Style {
    colour: bool,
}

impl Style {
    /// Colour on (`true`, a terminal) or off.
    pub(crate) fn new(colour: bool) -> Self {
        Self { colour }
    }

    fn paint(&self, code: &str, text: &str) -> String {
        if self.colour {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }

    /// Bold.
    pub(crate) fn bold(&self, text: &str) -> String {
        self.paint("1", text)
    }
    /// Green (PASS).
    pub(crate) fn green(&self, text: &str) -> String {
        self.paint("32", text)
    }
    /// Yellow (WARN).
    pub(crate) fn yellow(&self, text: &str) -> String {
        self.paint("33", text)
    }
    /// Red (FAIL).
    pub(crate) fn red(&self, text: &str) -> String {
        self.paint("31", text)
    }
    /// Dim (SKIP).
    pub(crate) fn dim(&self, text: &str) -> String {
        self.paint("2", text)
    }
}
