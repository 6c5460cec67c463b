from twisted.trial.unittest import SynchronousTestCase

from funcplane.errors import InvalidName
from funcplane.names import check_env_name, check_label, generate_version_name


class LabelTests(SynchronousTestCase):
    def test_dns_labels_pass(self):
        """
        Letters, digits and inner dashes, 1 to 63 characters, in any case, are labels.
        """
        for name in ["a", "v1", "hello-world", "envTest", "x" * 63, "0abc"]:
            self.assertEqual(check_label("function", name), name)

    def test_non_labels_fail(self):
        """
        Paths, dots, edge dashes, over-long names, non-ASCII and control characters fail
        with a message naming the kind and the rule.
        """
        for name in ["", "../x", "a/b", "a.b", "-a", "a-", "x" * 64, "ünï", "a\x00b", "%2e%2e", "a b", "a_b"]:
            e = self.assertRaises(InvalidName, check_label, "version", name)
            self.assertIn("version name", str(e))

    def test_non_strings_fail(self):
        """
        A name that is not a string fails as invalid rather than crashing.
        """
        self.assertRaises(InvalidName, check_label, "alias", 7)


class EnvNameTests(SynchronousTestCase):
    def test_identifiers(self):
        """
        Environment names are identifiers of at most 64 characters.
        """
        for name in ["APP_ENV", "_X", "A_1", "a" * 64]:
            self.assertEqual(check_env_name(name), name)
        for name in ["A-B", "1A", "a b", '"', "", "a" * 65, "Ä"]:
            self.assertRaises(InvalidName, check_env_name, name)


class GeneratedNameTests(SynchronousTestCase):
    def test_generated_names_are_short_labels(self):
        """
        A generated version name is 'v' and seven characters from the choice function, and a
        valid label.
        """
        choices = iter("abc1234")
        name = generate_version_name(lambda alphabet: next(choices))
        self.assertEqual(name, "vabc1234")
        generated = generate_version_name()
        self.assertEqual(check_label("version", generated), generated)
        self.assertEqual(len(generated), 8)

    def test_generated_names_differ(self):
        """
        Generated names come from a large space: 50 draws do not repeat.
        """
        self.assertEqual(len({generate_version_name() for _ in range(50)}), 50)
