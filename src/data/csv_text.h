// The small CSV dialect histocnn reads (Grade.csv, slide label lists): lines
// end in CR, LF or CRLF; a UTF-8 byte order mark is ignored; fields are split
// at commas and lose their surrounding spaces, tabs and double quotes.
// Quoted commas are not supported: no file we read needs them.
#pragma once

#include <string>
#include <vector>

namespace histocnn {

// The lines of `content` (without their ends); the BOM stripped from the first.
std::vector<std::string> csv_lines(const std::string& content);
// The fields of one line; "a," has two fields, the second empty.
std::vector<std::string> csv_fields(const std::string& line);
// `text` without surrounding spaces, tabs and double quotes.
std::string csv_trim(const std::string& text);
// `text` in lower case (ASCII).
std::string ascii_lower(std::string text);
// "a, b, c": names for a message.
std::string comma_list(const std::vector<std::string>& items);

}  // namespace histocnn
