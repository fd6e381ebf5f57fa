"""The page's few style rules, and the one script that scrolls: what Gradio's own parameters cannot say.

`CSS` goes to `launch(css=...)` (Gradio 6.31 takes it there, not in `gr.Blocks()`; see webapp.main). Each rule names
our own elem_ids; where it has to reach inside a Gradio component (the gallery's grid), the class it relies on is
named in its comment. tests/test_layout_browser.py measures what each rule is for on the drawn page.
`SCROLL_TO_SELECTED_TURN` is the browser-side step the Refine tab runs after drawing a turn (RefineTab.wire).
"""

from __future__ import annotations

__all__ = ["CSS", "SCROLL_TO_SELECTED_TURN"]

_CHECKBOX_MIN_WIDTH = """
/* Gemini 3 checkboxes: Gradio 6.31 draws a Checkbox with min-width 0 whatever its min_width, so at a phone's width
   the row squeezed Show thinking, Google Search grounding and Image search to 54 px each and cut their labels
   ("Sho / thi"). With a floor, the row wraps instead (two to a line at 390 px, one line on a desktop). */
#show-thoughts, #search, #image-search { min-width: min(110px, 100%) !important; }
"""

_DROPDOWN_TEXT = """
/* Dropdowns: Gradio draws the arrow over the right end of the text box, so a long choice (the model's name and
   price) ran under it. Stop the text before the arrow and end a cut-off choice with an ellipsis. */
input[role="combobox"] { padding-right: var(--size-6); text-overflow: ellipsis; }
"""

_PATH_STRIP = """
/* Refine's path strip: one row of thumbnails that scrolls sideways. As a grid of 6 columns, the turns after the
   sixth went onto rows below the strip's 230 px and out of sight, the selected one with them. The grid itself
   scrolls (not its frame, so the frame's Download all button stays put). Relies on the gallery's .grid-wrap (the
   frame) and .grid-container (the grid) classes. */
#refine-path .grid-wrap { overflow: hidden; }
#refine-path .grid-container { grid-auto-flow: column; grid-template-columns: none; grid-template-rows: 1fr;
                               grid-auto-columns: 170px; height: 100%; overflow-x: auto; overflow-y: hidden; }
"""

CSS = _CHECKBOX_MIN_WIDTH + _DROPDOWN_TEXT + _PATH_STRIP

# After the Refine tab draws a turn: scroll the path strip sideways so the selected thumbnail is in view (centred
# when it was out of view), without moving the page. Gradio scrolls to a selected thumbnail only in its preview
# mode, and the strip is a grid. Run a frame later, once the gallery has drawn the new selection.
SCROLL_TO_SELECTED_TURN = """() => { requestAnimationFrame(() => requestAnimationFrame(() => {
  for (const strip of document.querySelectorAll('#refine-path .grid-container')) {
    const turn = strip.querySelector('.thumbnail-item.selected');
    if (!turn) continue;
    const seen = strip.getBoundingClientRect(), box = turn.getBoundingClientRect();
    if (box.left < seen.left || box.right > seen.right)
      strip.scrollLeft += box.left - seen.left - (seen.width - box.width) / 2;
  }
})); }"""
