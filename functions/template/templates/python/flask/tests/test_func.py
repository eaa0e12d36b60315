"""Run with: python3 -m unittest discover -s tests (from the function's directory)."""
import unittest

from function import app


class TestFunc(unittest.TestCase):
    def test_echoes_json(self):
        reply = app.test_client().post("/", json={"greeting": "hello"})
        self.assertEqual(reply.status_code, 200)
        self.assertEqual(reply.get_json(), {"greeting": "hello"})

    def test_echoes_query(self):
        reply = app.test_client().get("/?name=flask")
        self.assertEqual(reply.get_json(), {"name": "flask"})


if __name__ == "__main__":
    unittest.main()
