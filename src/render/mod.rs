//! Pictures and reports of an [`Explanation`](crate::explain::Explanation): the word heatmap
//! (`words.png`), heat maps over the input and edited images (`overlays/NN-word.png`,
//! `overlays.png`), the contact sheet of perturbed edits (`samples.png`), one self-contained
//! HTML report, and a plain text table for the terminal.
//!
//! Everything here is pure: functions take results and return images, bytes or strings, and
//! the caller decides where they go. Text is drawn with DejaVu Sans, embedded in the binary
//! (`assets/fonts/`), so rendering needs no font installed at run time.
//!
//! One module per output, as ripgrep's printer has one per format: [`words`](words_image),
//! [`panels`](word_panel), [`samples`](contact_sheet), [`html`] and
//! [`terminal`](terminal_table), over the shared [`canvas`], [`text`] and [`colormap`].

pub mod canvas;
pub mod colormap;
#[cfg(test)]
mod fixture;
mod format;
pub mod html;
mod panels;
mod samples;
mod terminal;
pub mod text;
mod words;

pub use crate::io::escape_control;
pub use canvas::png_bytes;
pub use colormap::diverging;
pub use html::{ReportImages, escape_html, report_html};
pub use panels::{overlay, overlay_grid, word_panel};
pub use samples::contact_sheet;
pub use terminal::terminal_table;
pub use words::words_image;

/// A picture that cannot be drawn from the inputs it was given.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// An image or heat map whose size differs from the base image it belongs to.
    #[error(
        "{what} is {found_width}×{found_height} pixels but the base image is \
         {expected_width}×{expected_height}; spatial maps and edits must have the base image's size"
    )]
    ShapeMismatch {
        /// What had the wrong size ("heat map", "edited image").
        what: &'static str,
        /// Width of the base image.
        expected_width: u32,
        /// Height of the base image.
        expected_height: u32,
        /// Width found.
        found_width: u32,
        /// Height found.
        found_height: u32,
    },
}
