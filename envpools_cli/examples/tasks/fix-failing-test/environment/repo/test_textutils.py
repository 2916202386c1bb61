import unittest

from textutils import slugify, word_count


class SlugifyTest(unittest.TestCase):
    def test_lower_case_words(self) -> None:
        self.assertEqual(slugify("Hello, World!"), "hello-world")

    def test_digits_are_kept(self) -> None:
        self.assertEqual(slugify("release 2 notes"), "release-2-notes")


class WordCountTest(unittest.TestCase):
    def test_counts_words(self) -> None:
        self.assertEqual(word_count("one, two; three"), 3)


if __name__ == "__main__":
    unittest.main()
