"""Run with: python3 -m unittest discover -s tests (from the function's directory)."""
import asyncio
import unittest

from function import new


class TestFunc(unittest.TestCase):
    def test_echo(self):
        sent = []

        async def receive():
            return {'type': 'http.request', 'body': b'hello', 'more_body': False}

        async def send(message):
            sent.append(message)

        scope = {'type': 'http', 'method': 'POST', 'query_string': b''}
        asyncio.run(new().handle(scope, receive, send))
        self.assertEqual(sent[0]['status'], 200)
        self.assertEqual(sent[1]['body'], b'hello')


if __name__ == '__main__':
    unittest.main()
