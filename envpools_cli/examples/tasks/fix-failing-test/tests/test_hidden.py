import unittest

from textutils import slugify, word_count


class HiddenSlugifyTest(unittest.TestCase):
    def test_mixed_case_and_punctuation(self) -> None:
        self.assertEqual(slugify("  The QUICK brown -- Fox!  "), "the-quick-brown-fox")

    def test_empty(self) -> None:
        self.assertEqual(slugify("!!!"), "")

    def test_digits(self) -> None:
        self.assertEqual(slugify("Python 3 Rocks"), "python-3-rocks")


class HiddenWordCountTest(unittest.TestCase):
    def test_word_count_unchanged(self) -> None:
        self.assertEqual(word_count("A b C"), 3)


if __name__ == "__main__":
    unittest.main()
