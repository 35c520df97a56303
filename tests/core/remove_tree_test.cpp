#include <gtest/gtest.h>

#include <fstream>

#include "dreambooth/core/remove_tree.h"
#include "support/golden.h"

namespace fs = std::filesystem;
using namespace dreambooth;

TEST(RemoveTree, RemovesNestedFoldersButNotWhatLinksPointTo) {
  dreambooth::testing::TempDir dir;
  const fs::path outside = dir / "outside.txt";
  std::ofstream(outside) << "keep";
  const fs::path tree = dir / "tree";
  fs::create_directories(tree / "a" / "b" / "c");
  std::ofstream(tree / "a" / "file.txt") << "x";
  std::ofstream(tree / "a" / "b" / "c" / "deep.bin") << "y";
  fs::create_symlink(outside, tree / "a" / "link");
  fs::create_directory_symlink(dir.path(), tree / "loop");

  EXPECT_FALSE(remove_tree(tree));
  EXPECT_FALSE(fs::exists(tree));
  EXPECT_TRUE(fs::exists(outside));
}

TEST(RemoveTree, AFileOrNothing) {
  dreambooth::testing::TempDir dir;
  std::ofstream(dir / "single") << "z";
  EXPECT_FALSE(remove_tree(dir / "single"));
  EXPECT_FALSE(fs::exists(dir / "single"));
  EXPECT_FALSE(remove_tree(dir / "never-existed"));
}
