// The report's Markdown as a standalone HTML page: headings, images, tables
// and paragraphs — the subset the report writes, not Markdown at large.
#pragma once

#include <string>

namespace histocnn {

std::string html_escape(const std::string& text);
// `title`: the page's <title>.
std::string markdown_to_html(const std::string& markdown, const std::string& title);

}  // namespace histocnn
