// Fails the test program when a sanitizer wrote a report during it, also
// one from a process it started (the agent, `tcpka audit` ...). The
// sanitizer build (tests/sanitize.sh) points ASAN_OPTIONS and UBSAN_OPTIONS
// log_path into TCPKA_SANITIZER_LOG_DIR, so every report, in any process,
// becomes a file there: an agent stopped by SIGTERM that then reports a
// leak, or one whose stderr a test never reads, cannot go unnoticed.
// Without TCPKA_SANITIZER_LOG_DIR this does nothing.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>

namespace {

class SanitizerReports : public testing::Environment {
 public:
  void SetUp() override { before_ = list(); }
  void TearDown() override {
    for (const std::string& f : list()) {
      if (before_.count(f)) continue;
      std::ifstream in(f);
      std::stringstream text;
      text << in.rdbuf();
      ADD_FAILURE() << "sanitizer report " << f << ":\n" << text.str();
    }
  }

 private:
  static std::set<std::string> list() {
    std::set<std::string> out;
    const char* dir = std::getenv("TCPKA_SANITIZER_LOG_DIR");
    if (!dir || !*dir) return out;
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(dir, ec)) out.insert(e.path());
    return out;
  }
  std::set<std::string> before_;
};

const auto* const kRegistered = testing::AddGlobalTestEnvironment(new SanitizerReports);

}  // namespace
