from .func import app
