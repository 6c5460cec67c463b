from twisted.application.service import ServiceMaker

funcplane = ServiceMaker(
    "funcplane",
    "funcplane.tap",
    "Self-hosted Function-as-a-Service for Workers-style JavaScript",
    "funcplane",
)
