#include "study/markdown_html.h"

#include <cctype>
#include <sstream>

namespace histocnn {

std::string html_escape(const std::string& text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

namespace {

// The text between `mark` at `at` and its closing `mark`, wrapped in `tag`
// and appended to `html`; returns where the text after it starts, or npos
// (nothing appended) when the mark is not closed.
size_t span(const std::string& text, size_t at, const std::string& mark, const std::string& tag,
            std::string& html) {
  const size_t begin = at + mark.size(), end = text.find(mark, begin);
  if (end == std::string::npos || end == begin) return std::string::npos;
  const std::string inner = text.substr(begin, end - begin);
  html += "<" + tag + ">" + (tag == "code" ? html_escape(inner) : inline_html(inner)) + "</" + tag +
          ">";
  return end + mark.size();
}

// A [text](url) link at `at`, or npos.
size_t link(const std::string& text, size_t at, std::string& html) {
  const size_t middle = text.find("](", at);
  const size_t end = middle == std::string::npos ? middle : text.find(')', middle);
  if (end == std::string::npos) return std::string::npos;
  html += "<a href=\"" + html_escape(text.substr(middle + 2, end - middle - 2)) + "\">" +
          inline_html(text.substr(at + 1, middle - at - 1)) + "</a>";
  return end + 1;
}

}  // namespace

std::string inline_html(const std::string& text) {
  std::string html;
  for (size_t at = 0; at < text.size();) {
    size_t next = std::string::npos;
    if (text[at] == '`')
      next = span(text, at, "`", "code", html);
    else if (text.compare(at, 2, "**") == 0)
      next = span(text, at, "**", "strong", html);
    else if (text[at] == '*')
      next = span(text, at, "*", "em", html);
    else if (text[at] == '[')
      next = link(text, at, html);
    if (next == std::string::npos) {
      html += html_escape(std::string(1, text[at]));
      next = at + 1;
    }
    at = next;
  }
  return html;
}

namespace {

// A table row; the header row's cells are <th>.
std::string table_row(const std::string& line, bool header) {
  const std::string tag = header ? "th" : "td";
  std::string html = "<tr>";
  std::stringstream cells(line.substr(1));
  for (std::string cell; std::getline(cells, cell, '|');)
    html += "<" + tag + ">" + inline_html(cell) + "</" + tag + ">";
  return html + "</tr>\n";
}

// One line that is not part of a table. Headings get the id GitHub gives
// them (heading_anchor), so a [link](#anchor) works in both renderings.
std::string block(const std::string& line) {
  for (const auto& [prefix, tag] :
       {std::pair<std::string, std::string>{"### ", "h3"}, {"## ", "h2"}, {"# ", "h1"}})
    if (line.rfind(prefix, 0) == 0) {
      const std::string text = line.substr(prefix.size());
      return "<" + tag + " id=\"" + html_escape(heading_anchor(text)) + "\">" + inline_html(text) +
             "</" + tag + ">\n";
    }
  if (line.rfind("![", 0) == 0) {
    const auto open = line.find("]("), close = line.find(')', open);
    return "<p><img src=\"" + html_escape(line.substr(open + 2, close - open - 2)) + "\" alt=\"" +
           html_escape(line.substr(2, open - 2)) + "\">" + inline_html(line.substr(close + 1)) +
           "</p>\n";
  }
  return line.empty() ? "" : "<p>" + inline_html(line) + "</p>\n";
}

}  // namespace

std::string heading_anchor(const std::string& heading) {
  std::string anchor;
  for (const unsigned char c : heading) {
    if (std::isalnum(c) || c == '-' || c == '_')
      anchor += char(std::tolower(c));
    else if (c == ' ')
      anchor += '-';
    else if (c >= 0x80)
      anchor += char(c);  // GitHub keeps letters beyond ASCII as they are
  }
  return anchor;
}

std::string markdown_to_html(const std::string& markdown, const std::string& title) {
  std::string html = "<!doctype html><meta charset=utf-8><title>" + html_escape(title) +
                     "</title><style>body{font-family:sans-serif;max-width:1000px;margin:auto}"
                     "img{max-width:100%}table{border-collapse:collapse}"
                     "td,th{border:1px solid #ccc;padding:2px 6px}</style>\n";
  std::istringstream lines(markdown);
  bool in_table = false;
  for (std::string line; std::getline(lines, line);) {
    const bool table_line = line.rfind("|", 0) == 0;
    if (table_line && line.find("---") != std::string::npos) continue;
    if (table_line != in_table) html += table_line ? "<table>\n" : "</table>\n";
    const bool header = table_line && !in_table;
    in_table = table_line;
    html += table_line ? table_row(line, header) : block(line);
  }
  if (in_table) html += "</table>\n";
  return html;
}

}  // namespace histocnn
