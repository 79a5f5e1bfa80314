#include "cgroup.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <limits.h>
#include <linux/magic.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "fixtures.h"

namespace tcpka {
namespace {

namespace fs = std::filesystem;

using ::testing::HasSubstr;
using testing_fixtures::TempCgroups;

TEST(Cgroup2MountTest, HybridHierarchy) {
  const std::string mountinfo =
      "22 27 0:20 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw\n"
      "23 27 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:13 - proc proc rw\n"
      "27 1 259:2 / / rw,relatime shared:1 - ext4 /dev/nvme0n1p2 rw,errors=remount-ro\n"
      "30 22 0:26 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755\n"
      "31 30 0:27 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 "
      "cgroup2 rw,nsdelegate\n"
      "32 30 0:28 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:11 - cgroup "
      "cgroup rw,xattr,name=systemd\n"
      "35 30 0:31 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:15 - cgroup "
      "cgroup rw,memory\n";
  auto m = cgroup2_mount_from_mountinfo(mountinfo);
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(*m, "/sys/fs/cgroup/unified");
}

TEST(Cgroup2MountTest, PureV2) {
  const std::string mountinfo =
      "24 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw\n"
      "25 24 0:22 / /sys rw,nosuid,nodev,noexec,relatime - sysfs sysfs rw\n"
      "26 25 0:23 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime - cgroup2 cgroup2 "
      "rw,nsdelegate,memory_recursiveprot\n";
  auto m = cgroup2_mount_from_mountinfo(mountinfo);
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(*m, "/sys/fs/cgroup");
}

TEST(Cgroup2MountTest, OptionalFieldsBeforeSeparator) {
  const std::string mountinfo =
      "36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue\n"
      "40 24 0:35 / /run/cg2 rw,relatime shared:5 master:1 - cgroup2 none rw\n";
  auto m = cgroup2_mount_from_mountinfo(mountinfo);
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(*m, "/run/cg2");
}

TEST(Cgroup2MountTest, EscapedSpaceInMountPoint) {
  const std::string mountinfo =
      "40 24 0:35 / /mnt/my\\040cgroups rw,relatime shared:5 - cgroup2 cgroup2 rw\n";
  auto m = cgroup2_mount_from_mountinfo(mountinfo);
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(*m, "/mnt/my cgroups");
}

TEST(Cgroup2MountTest, OtherEscapes) {
  // Tab, backslash, and an escape at the very end of the field.
  const std::string mountinfo = "40 24 0:35 / /mnt/a\\011b\\134c\\040 rw - cgroup2 cgroup2 rw\n";
  auto m = cgroup2_mount_from_mountinfo(mountinfo);
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(*m, "/mnt/a\tb\\c ");
}

TEST(Cgroup2MountTest, LastLineWithoutNewline) {
  const std::string mountinfo =
      "24 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw\n"
      "26 25 0:23 / /cg rw - cgroup2 cgroup2 rw";
  auto m = cgroup2_mount_from_mountinfo(mountinfo);
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(*m, "/cg");
}

TEST(Cgroup2MountTest, FirstOfSeveral) {
  const std::string mountinfo =
      "26 25 0:23 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n"
      "50 40 0:23 / /container/sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
  auto m = cgroup2_mount_from_mountinfo(mountinfo);
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(*m, "/sys/fs/cgroup");
}

TEST(Cgroup2MountTest, NoneIsNullopt) {
  EXPECT_FALSE(cgroup2_mount_from_mountinfo("").has_value());
  EXPECT_FALSE(cgroup2_mount_from_mountinfo(
                   "24 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw\n"
                   "35 30 0:31 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n")
                   .has_value());
}

TEST(Cgroup2MountTest, IgnoresCgroup2NamedOutsideTheFsTypeField) {
  // "cgroup2" as a mount point, a source or an option is not the file system type.
  EXPECT_FALSE(
      cgroup2_mount_from_mountinfo("40 24 0:35 / /cgroup2 rw shared:1 - tmpfs cgroup2 rw,cgroup2\n"
                                   "41 24 0:36 / /x rw - ext4 cgroup2 rw\n")
          .has_value());
}

TEST(Cgroup2MountTest, MalformedLinesAreSkipped) {
  const std::string mountinfo =
      "garbage\n"
      "1 2 3 4 5 6 -\n"
      "\n"
      "26 25 0:23 / /cg rw - cgroup2 cgroup2 rw\n";
  auto m = cgroup2_mount_from_mountinfo(mountinfo);
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(*m, "/cg");
}

uint64_t inode_of(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
  return st.st_ino;
}

class CgroupResolverTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/tcpka_cgroup_test.XXXXXX";
    const char* d = mkdtemp(tmpl);
    ASSERT_NE(d, nullptr);
    root_ = d;
    fs::create_directories(root_ + "/a/b/c");
    fs::create_directories(root_ + "/x");
  }
  void TearDown() override {
    std::error_code ec;
    if (!root_.empty()) fs::remove_all(root_, ec);
  }

  std::string root_;
};

TEST_F(CgroupResolverTest, ResolvesIdsToRelativePaths) {
  CgroupResolver r(root_, std::chrono::milliseconds(0));
  EXPECT_EQ(r.root(), root_);
  EXPECT_EQ(r.path(inode_of(root_)), "/");
  EXPECT_EQ(r.path(inode_of(root_ + "/a")), "/a");
  EXPECT_EQ(r.path(inode_of(root_ + "/a/b")), "/a/b");
  EXPECT_EQ(r.path(inode_of(root_ + "/a/b/c")), "/a/b/c");
  EXPECT_EQ(r.path(inode_of(root_ + "/x")), "/x");
}

TEST_F(CgroupResolverTest, TrailingSlashInRoot) {
  CgroupResolver r(root_ + "/", std::chrono::milliseconds(0));
  EXPECT_EQ(r.path(inode_of(root_ + "/a/b")), "/a/b");
  EXPECT_EQ(r.path(inode_of(root_)), "/");
}

TEST_F(CgroupResolverTest, UnknownIdIsEmpty) {
  CgroupResolver r(root_, std::chrono::milliseconds(0));
  // An inode outside the tree on the same file system: the root's parent directory.
  EXPECT_EQ(r.path(inode_of(fs::path(root_).parent_path().string())), "");
  EXPECT_EQ(r.path(0), "");
}

TEST_F(CgroupResolverTest, FilesAreNotCgroups) {
  const std::string file = root_ + "/a/cgroup.procs";
  {
    FILE* f = fopen(file.c_str(), "w");
    ASSERT_NE(f, nullptr);
    fclose(f);
  }
  CgroupResolver r(root_, std::chrono::milliseconds(0));
  EXPECT_EQ(r.path(inode_of(file)), "");
  EXPECT_EQ(r.path(inode_of(root_ + "/a")), "/a");
}

TEST_F(CgroupResolverTest, NewDirectoryFoundAfterRescan) {
  CgroupResolver r(root_, std::chrono::milliseconds(0));
  ASSERT_EQ(r.path(inode_of(root_ + "/a/b")), "/a/b");
  fs::create_directories(root_ + "/a/new/deep");
  EXPECT_EQ(r.path(inode_of(root_ + "/a/new/deep")), "/a/new/deep");
  EXPECT_EQ(r.path(inode_of(root_ + "/a/new")), "/a/new");
}

TEST_F(CgroupResolverTest, RemovedDirectoryIsForgottenAfterRescan) {
  CgroupResolver r(root_, std::chrono::milliseconds(0));
  const uint64_t c = inode_of(root_ + "/a/b/c");
  ASSERT_EQ(r.path(c), "/a/b/c");
  fs::create_directories(root_ + "/later");
  fs::remove(root_ + "/a/b/c");
  // A miss triggers the rescan that drops /a/b/c.
  EXPECT_EQ(r.path(inode_of(root_ + "/later")), "/later");
  // Nothing was created in the tree since, so c's inode cannot name anything there.
  EXPECT_EQ(r.path(c), "");
}

TEST_F(CgroupResolverTest, NewIdsScanAtOnceMissingOnesWithinTheBudget) {
  CgroupResolver r(root_, std::chrono::hours(1));
  ASSERT_EQ(r.path(inode_of(root_ + "/a")), "/a");  // first lookup scans
  const uint64_t gone = inode_of(fs::path(root_).parent_path().string());
  EXPECT_EQ(r.path(gone), "");  // a new id: scans, does not find it
  fs::create_directories(root_ + "/late");
  // A new id is scanned for at once, even within min_rescan of the last scan.
  EXPECT_EQ(r.path(inode_of(root_ + "/late")), "/late");
  // A missing id is not: a cgroup made now is not seen through it.
  fs::create_directories(root_ + "/later");
  const uint64_t later = inode_of(root_ + "/later");
  EXPECT_EQ(r.path(gone), "");
  fs::remove(root_ + "/later");
  EXPECT_EQ(r.path(later), "") << "no scan happened while /later existed";
}

TEST_F(CgroupResolverTest, NewCgroupResolvesEvenRightAfterAMissRescanned) {
  CgroupResolver r(root_, std::chrono::milliseconds(20));
  const uint64_t gone = inode_of(fs::path(root_).parent_path().string());
  EXPECT_EQ(r.path(gone), "");  // scans, does not find it
  fs::create_directories(root_ + "/fresh");
  const uint64_t fresh = inode_of(root_ + "/fresh");
  // Within min_rescan: not yet (no scan storm), but soon after it is found.
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
  EXPECT_EQ(r.path(fresh), "/fresh");
}

TEST_F(CgroupResolverTest, AMissingIdDoesNotRescanOnEveryLookup) {
  CgroupResolver r(root_, std::chrono::milliseconds(0));
  const uint64_t gone = inode_of(fs::path(root_).parent_path().string());
  EXPECT_EQ(r.path(gone), "");
  // A cgroup appears, the missing id is looked up again, the cgroup goes. Had
  // that lookup scanned, the cgroup would still be cached and answered.
  fs::create_directories(root_ + "/after");
  const uint64_t after = inode_of(root_ + "/after");
  EXPECT_EQ(r.path(gone), "");
  fs::remove(root_ + "/after");
  EXPECT_EQ(r.path(after), "");
}

TEST_F(CgroupResolverTest, Exists) {
  CgroupResolver r(root_, std::chrono::milliseconds(0));
  EXPECT_TRUE(r.exists("/a/b"));
  EXPECT_TRUE(r.exists("/a/b/c"));
  EXPECT_TRUE(r.exists("/"));
  EXPECT_FALSE(r.exists("/zz"));
  const std::string file = root_ + "/a/memory.max";
  {
    FILE* f = fopen(file.c_str(), "w");
    ASSERT_NE(f, nullptr);
    fclose(f);
  }
  EXPECT_FALSE(r.exists("/a/memory.max"));
  fs::remove(root_ + "/a/b/c");
  EXPECT_FALSE(r.exists("/a/b/c"));
}

TEST_F(CgroupResolverTest, UnreadableDirectoryDoesNotStopTheScan) {
  fs::create_directories(root_ + "/locked/inner");
  fs::create_directories(root_ + "/open");
  ASSERT_EQ(::chmod((root_ + "/locked").c_str(), 0), 0);
  CgroupResolver r(root_, std::chrono::hours(1));
  EXPECT_EQ(r.path(inode_of(root_ + "/locked")), "/locked");
  EXPECT_EQ(r.path(inode_of(root_ + "/open")), "/open");
  EXPECT_EQ(r.path(inode_of(root_ + "/a/b/c")), "/a/b/c");
  ::chmod((root_ + "/locked").c_str(), 0755);
}

TEST_F(CgroupResolverTest, StableCgroupsResolveWhileOthersComeAndGo) {
  // On a real host cgroups are removed while we scan. That must not hide the
  // ones that stay: a scan that misses them answers "" for min_rescan.
  constexpr int kStable = 50;
  constexpr int kChurning = 200;
  std::vector<uint64_t> stable;
  for (int i = 0; i < kStable; ++i) {
    const std::string d = root_ + "/s" + std::to_string(i);
    fs::create_directories(d);
    stable.push_back(inode_of(d));
  }
  for (int i = 0; i < kChurning; ++i)
    fs::create_directories(root_ + "/c" + std::to_string(i) + "/x");

  std::atomic<bool> stop{false};
  std::thread churn([&] {
    std::error_code ec;
    for (int n = 0; !stop; ++n) {
      const std::string d = root_ + "/c" + std::to_string(n % kChurning);
      fs::remove_all(d, ec);
      fs::create_directories(d + "/x", ec);
    }
  });
  int bad_scans = 0;
  std::string first_miss;
  for (int scan = 0; scan < 300; ++scan) {
    // One scan per resolver: the first lookup scans, later misses do not rescan.
    CgroupResolver r(root_, std::chrono::hours(1));
    bool all = true;
    for (int i = 0; i < kStable; ++i) {
      if (r.path(stable[i]) != "/s" + std::to_string(i)) {
        if (first_miss.empty()) first_miss = "/s" + std::to_string(i);
        all = false;
      }
    }
    bad_scans += !all;
  }
  stop = true;
  churn.join();
  EXPECT_EQ(bad_scans, 0) << "scans that lost a live cgroup (first: " << first_miss
                          << ") while sibling cgroups were being removed";
}

TEST(CgroupResolverNoRootTest, EmptyRootResolvesNothing) {
  CgroupResolver r("", std::chrono::milliseconds(0));
  EXPECT_EQ(r.path(1), "");
  EXPECT_EQ(r.path(inode_of("/")), "");
  EXPECT_FALSE(r.exists("/"));
}

// resolve_cgroup_dir() against the host's real cgroup2 mount, with cgroups
// of our own. Without a cgroup2 mount these tests fail: they do not skip.
class ResolveCgroupDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto m = find_cgroup2_mount();
    ASSERT_TRUE(m.has_value()) << "no cgroup2 mount in /proc/self/mountinfo";
    char buf[PATH_MAX];
    ASSERT_NE(::realpath(m->c_str(), buf), nullptr) << *m;
    root_ = buf;
    struct statfs sfs {};
    ASSERT_EQ(::statfs(root_.c_str(), &sfs), 0) << root_;
    ASSERT_EQ(sfs.f_type, CGROUP2_SUPER_MAGIC) << root_ << " is not cgroup2";
    cgroups_ = std::make_unique<TempCgroups>(root_);
  }
  void TearDown() override { cgroups_.reset(); }

  // A new cgroup of ours under parent_rel; its path relative to the mount.
  std::string make(const std::string& tag, const std::string& parent_rel = "") {
    auto r = cgroups_->make(tag, parent_rel);
    EXPECT_TRUE(r.ok()) << r.error();
    return r.ok() ? *r : std::string();
  }

  std::string root_;
  std::unique_ptr<TempCgroups> cgroups_;
};

TEST_F(ResolveCgroupDirTest, TheRootItself) {
  auto d = resolve_cgroup_dir(root_, root_);
  ASSERT_TRUE(d.ok()) << d.error();
  EXPECT_EQ(d->abs, root_);
  EXPECT_EQ(d->rel, "/");
  EXPECT_EQ(d->level, 0u);
  EXPECT_EQ(d->id, inode_of(root_));
  EXPECT_NE(d->id, 0u);
}

TEST_F(ResolveCgroupDirTest, SlashIsTheRoot) {
  // "/" relative to the mount; the host's "/" is not on cgroup2.
  auto d = resolve_cgroup_dir("/", root_);
  ASSERT_TRUE(d.ok()) << d.error();
  EXPECT_EQ(d->abs, root_);
  EXPECT_EQ(d->rel, "/");
  EXPECT_EQ(d->level, 0u);
  EXPECT_EQ(d->id, inode_of(root_));
}

TEST_F(ResolveCgroupDirTest, RootGivenWithTrailingSlash) {
  auto d = resolve_cgroup_dir(root_ + "/", root_);
  ASSERT_TRUE(d.ok()) << d.error();
  EXPECT_EQ(d->rel, "/");
  EXPECT_EQ(d->id, inode_of(root_));
}

TEST_F(ResolveCgroupDirTest, AbsoluteChild) {
  const std::string rel = make("abs");
  ASSERT_FALSE(rel.empty());
  auto d = resolve_cgroup_dir(root_ + rel, root_);
  ASSERT_TRUE(d.ok()) << d.error();
  EXPECT_EQ(d->abs, root_ + rel);
  EXPECT_EQ(d->rel, rel);
  EXPECT_EQ(d->level, 1u);
  EXPECT_EQ(d->id, inode_of(root_ + rel));
  EXPECT_NE(d->id, inode_of(root_));
}

TEST_F(ResolveCgroupDirTest, ChildRelativeToTheMount) {
  const std::string rel = make("rel");
  ASSERT_FALSE(rel.empty());
  ASSERT_EQ(rel, "/" + TempCgroups::name("rel"));
  auto from_abs = resolve_cgroup_dir(root_ + rel, root_);
  ASSERT_TRUE(from_abs.ok()) << from_abs.error();
  // "/tcpka-unit-..." names no directory of the host's root: it is under the mount.
  auto d = resolve_cgroup_dir(rel, root_);
  ASSERT_TRUE(d.ok()) << d.error();
  EXPECT_EQ(d->abs, root_ + rel);
  EXPECT_EQ(d->rel, rel);
  EXPECT_EQ(d->level, 1u);
  EXPECT_EQ(d->id, from_abs->id);
  // Without the leading slash, and with a trailing one, too.
  for (const std::string& spelling : {rel.substr(1), rel + "/", rel + "/."}) {
    auto e = resolve_cgroup_dir(spelling, root_);
    ASSERT_TRUE(e.ok()) << spelling << ": " << e.error();
    EXPECT_EQ(e->rel, rel) << spelling;
    EXPECT_EQ(e->id, from_abs->id) << spelling;
  }
}

TEST_F(ResolveCgroupDirTest, NestedChild) {
  const std::string outer = make("outer");
  ASSERT_FALSE(outer.empty());
  const std::string inner = make("inner", outer);
  ASSERT_FALSE(inner.empty());
  ASSERT_EQ(inner, outer + "/" + TempCgroups::name("inner"));

  auto d = resolve_cgroup_dir(root_ + inner, root_);
  ASSERT_TRUE(d.ok()) << d.error();
  EXPECT_EQ(d->abs, root_ + inner);
  EXPECT_EQ(d->rel, inner);
  EXPECT_EQ(d->level, 2u);
  EXPECT_EQ(d->id, inode_of(root_ + inner));

  auto r = resolve_cgroup_dir(inner, root_);
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_EQ(r->rel, inner);
  EXPECT_EQ(r->level, 2u);
  EXPECT_EQ(r->id, d->id);

  auto o = resolve_cgroup_dir(outer, root_);
  ASSERT_TRUE(o.ok()) << o.error();
  EXPECT_EQ(o->level, 1u);
  EXPECT_NE(o->id, d->id);
}

TEST_F(ResolveCgroupDirTest, DotDotThatStaysInsideIsNormalised) {
  const std::string a = make("dda");
  const std::string b = make("ddb");
  ASSERT_FALSE(a.empty());
  ASSERT_FALSE(b.empty());
  auto d = resolve_cgroup_dir(a + "/.." + b, root_);
  ASSERT_TRUE(d.ok()) << d.error();
  EXPECT_EQ(d->rel, b);
  EXPECT_EQ(d->level, 1u);
  EXPECT_EQ(d->id, inode_of(root_ + b));
}

TEST_F(ResolveCgroupDirTest, MissingPathIsAnErrorNamingIt) {
  const std::string missing = "/" + TempCgroups::name("never-created");
  for (const std::string& path : {missing, root_ + missing, missing.substr(1)}) {
    auto d = resolve_cgroup_dir(path, root_);
    ASSERT_FALSE(d.ok()) << path << " resolved to " << d->abs;
    EXPECT_THAT(d.error(), HasSubstr("'" + path + "'"));
  }
}

TEST_F(ResolveCgroupDirTest, EmptyPathIsAnError) {
  // An empty path names no cgroup (an unset shell variable, say); it must not
  // quietly mean the root, which holds every process of the host.
  auto d = resolve_cgroup_dir("", root_);
  EXPECT_FALSE(d.ok()) << "'' resolved to " << d->abs << " (rel " << d->rel << ")";
}

TEST_F(ResolveCgroupDirTest, EmptyRootIsAnError) {
  auto d = resolve_cgroup_dir("/x", "");
  ASSERT_FALSE(d.ok()) << "resolved to " << d->abs;
  EXPECT_THAT(d.error(), HasSubstr("'/x'"));
}

TEST_F(ResolveCgroupDirTest, DirectoryOutsideCgroup2IsAnError) {
  char tmpl[] = "/tmp/tcpka_cgroup_test.XXXXXX";
  const char* t = mkdtemp(tmpl);
  ASSERT_NE(t, nullptr);
  const std::string dir = t;
  auto d = resolve_cgroup_dir(dir, root_);
  auto as_root = resolve_cgroup_dir(dir, dir);  // a root that is not cgroup2
  auto below = resolve_cgroup_dir("/", dir);
  ::rmdir(dir.c_str());
  ASSERT_FALSE(d.ok()) << dir << " resolved to " << d->abs;
  EXPECT_THAT(d.error(), HasSubstr("'" + dir + "'"));
  ASSERT_FALSE(as_root.ok()) << dir << " accepted as a cgroup2 root";
  EXPECT_THAT(as_root.error(), HasSubstr("'" + dir + "'"));
  EXPECT_FALSE(below.ok()) << "'/' under " << dir << " resolved to " << below->abs;
}

TEST_F(ResolveCgroupDirTest, RegularFileIsAnError) {
  const std::string rel = make("file");
  ASSERT_FALSE(rel.empty());
  // A file of the cgroup2 file system itself.
  for (const std::string& path :
       {root_ + rel + "/cgroup.procs", rel + "/cgroup.procs", root_ + "/cgroup.procs"}) {
    auto d = resolve_cgroup_dir(path, root_);
    ASSERT_FALSE(d.ok()) << path << " resolved to " << d->abs;
    EXPECT_THAT(d.error(), HasSubstr("'" + path + "'"));
  }
  // And an ordinary file elsewhere.
  char tmpl[] = "/tmp/tcpka_cgroup_test.XXXXXX";
  const int fd = mkstemp(tmpl);
  ASSERT_GE(fd, 0);
  ::close(fd);
  auto f = resolve_cgroup_dir(tmpl, root_);
  ::unlink(tmpl);
  ASSERT_FALSE(f.ok()) << tmpl << " resolved to " << f->abs;
  EXPECT_THAT(f.error(), HasSubstr(std::string("'") + tmpl + "'"));
}

TEST_F(ResolveCgroupDirTest, DotDotEscapingTheMountIsAnError) {
  const std::string rel = make("escape");
  ASSERT_FALSE(rel.empty());
  for (const std::string& path :
       {root_ + "/..", root_ + rel + "/../..", std::string("/.."), rel + "/../..",
        std::string(".."), root_ + "/../" + fs::path(root_).filename().string() + "/../.."}) {
    auto d = resolve_cgroup_dir(path, root_);
    ASSERT_FALSE(d.ok()) << path << " resolved to " << d->abs;
    EXPECT_THAT(d.error(), HasSubstr("'" + path + "'"));
  }
}

TEST_F(ResolveCgroupDirTest, GuardRemovesItsCgroups) {
  std::string outer_abs, inner_abs;
  {
    TempCgroups scoped(root_);
    auto outer = scoped.make("guard");
    ASSERT_TRUE(outer.ok()) << outer.error();
    auto inner = scoped.make("guard-inner", *outer);
    ASSERT_TRUE(inner.ok()) << inner.error();
    outer_abs = root_ + *outer;
    inner_abs = root_ + *inner;
    EXPECT_TRUE(fs::is_directory(inner_abs));
  }
  EXPECT_FALSE(fs::exists(inner_abs));
  EXPECT_FALSE(fs::exists(outer_abs));
}

}  // namespace
}  // namespace tcpka
