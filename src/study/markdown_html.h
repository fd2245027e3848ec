// The report's Markdown as a standalone HTML page: headings, images, tables
// (the first row a header), paragraphs, and inline `code`, *emphasis*,
// **strong** and [links](url) — the subset the report writes, not Markdown
// at large.
#pragma once

#include <string>

namespace histocnn {

std::string html_escape(const std::string& text);
// A heading's anchor as GitHub makes it: lower case, spaces to '-', other
// ASCII punctuation dropped ("Slide 3: case 12" -> "slide-3-case-12").
std::string heading_anchor(const std::string& heading);
// One line's inline Markdown as HTML (escaped).
std::string inline_html(const std::string& text);
// `title`: the page's <title>.
std::string markdown_to_html(const std::string& markdown, const std::string& title);

}  // namespace histocnn
