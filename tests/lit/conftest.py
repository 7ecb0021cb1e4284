from model_fixtures import *  # noqa: F401,F403
