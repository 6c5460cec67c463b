"""
Attacks on funcplane and its answers: each test is one attack, run against a real
funcplane with real workerd children, and fails if the defence is removed.
"""
