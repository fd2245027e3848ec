#include "study/markdown_html.h"

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

std::string table_row(const std::string& line) {
  std::string html = "<tr>";
  std::stringstream cells(line.substr(1));
  for (std::string cell; std::getline(cells, cell, '|');)
    html += "<td>" + html_escape(cell) + "</td>";
  return html + "</tr>\n";
}

// One line that is not part of a table.
std::string block(const std::string& line) {
  for (const auto& [prefix, tag] :
       {std::pair<std::string, std::string>{"### ", "h3"}, {"## ", "h2"}, {"# ", "h1"}})
    if (line.rfind(prefix, 0) == 0)
      return "<" + tag + ">" + html_escape(line.substr(prefix.size())) + "</" + tag + ">\n";
  if (line.rfind("![", 0) == 0) {
    const auto open = line.find("]("), close = line.find(')', open);
    return "<p><img src=\"" + html_escape(line.substr(open + 2, close - open - 2)) + "\" alt=\"" +
           html_escape(line.substr(2, open - 2)) + "\"></p>\n";
  }
  return line.empty() ? "" : "<p>" + html_escape(line) + "</p>\n";
}

}  // namespace

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
    in_table = table_line;
    html += table_line ? table_row(line) : block(line);
  }
  if (in_table) html += "</table>\n";
  return html;
}

}  // namespace histocnn
