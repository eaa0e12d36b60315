"""Run with: python3 -m unittest discover -s tests (from the function's directory); FastAPI's
TestClient needs httpx."""
import unittest

from fastapi.testclient import TestClient

from function import app


class TestFunc(unittest.TestCase):
    def test_echoes_json(self):
        reply = TestClient(app).post("/", json={"greeting": "hello"})
        self.assertEqual(reply.status_code, 200)
        self.assertEqual(reply.json(), {"greeting": "hello"})


if __name__ == "__main__":
    unittest.main()
